"""The platform's names and pools, as the deployment provides them.

One JSON document carries every name a DAG needs (namespaces, service accounts, images,
MLflow URL, storage, node pools). On a cluster the Helm release puts it in the
ML_PLATFORM_CONFIG environment variable from the Pulumi stack; locally the default file
beside this module mirrors the `kind` stack.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

CONFIG_ENV = "ML_PLATFORM_CONFIG"
RUNTIME_ENV = "ML_PLATFORM_RUNTIME"
DEFAULT_CONFIG_FILE = Path(__file__).with_name("platform.kind.json")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
GPU_RESOURCE = "nvidia.com/gpu"
# A team's own image (dags/teams/<team>/images/<name>/) is pushed as <registry>/team-<team>-<name>.
TEAM_IMAGE_PREFIX = "team-"
# Which image a pod runs; the deployer's NetworkPolicy selects its pods by it.
IMAGE_LABEL = "ml-platform/image"
DEFAULT_MAX_SWEEP_COMBINATIONS = 16  # a document without limits (the platform.kind.json value)
# One path component of an image repository, as registries accept it.
_REPOSITORY_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")

Runtime = Literal["kubernetes", "local"]


class PlatformConfigError(ValueError):
    """The platform configuration is malformed; the message names the key."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class Pool:
    name: str
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    gpu_type: str | None
    gpus_per_node: int
    node_allocatable: dict[str, str] = field(default_factory=dict)
    # gpu.stands_in_for: other stacks' GPU types this pool's (emulated) GPUs take work for.
    stands_in_for: tuple[str, ...] = ()
    # The most nodes the pool ever has (kind: its nodes; cloud: the autoscaler's max); None in
    # a document that does not say, and then no capacity is checked against it.
    max_nodes: int | None = None
    # The Airflow pool its GPU tasks take a slot per GPU from (airflow_pools); None: none.
    airflow_pool: str | None = None

    @property
    def has_gpus(self) -> bool:
        return self.gpus_per_node > 0

    def offers_gpu_type(self, gpu_type: str) -> bool:
        """Whether a task pinned to `gpu_type` may run here: its own type or a stand-in."""
        return self.has_gpus and (gpu_type == self.gpu_type or gpu_type in self.stands_in_for)


@dataclass(frozen=True)
class Images:
    registry: str
    tag: str
    pull_policy: str
    names: dict[str, str]

    def ref(self, image: str) -> str:
        """Full reference of one of the platform's images, e.g. `trainer`."""
        if image not in self.names:
            known = ", ".join(sorted(self.names))
            raise PlatformConfigError(f"unknown platform image {image!r} (known: {known})")
        return f"{self.registry}/{self.names[image]}:{self.tag}"

    def team_ref(self, team: str, image: str) -> str:
        """Full reference of a team's own image: under the platform's registry and tag."""
        return f"{self.registry}/{team_repository(team, image)}:{self.tag}"


def team_repository(team: str, image: str) -> str:
    """The repository a team image is pushed to: `team-<team>-<image>`, the one naming rule."""
    repository = f"{TEAM_IMAGE_PREFIX}{team}-{image}"
    if not _REPOSITORY_COMPONENT.match(repository):
        raise PlatformConfigError(
            f"team {team!r}, image {image!r}: {repository!r} is not a valid image repository "
            "name (lowercase letters and digits, separated by single '.', '_' or '-')"
        )
    return repository


@dataclass(frozen=True)
class TeamIdentity:
    """A team's identities on a stack: its pods' service account and Secrets (training
    namespace)."""

    team: str
    service_account: str
    mlflow_secret: str  # the team's MLflow login
    # The team's storage settings (kind: its key to its folder of the datasets bucket; AWS:
    # the region). None on GCP: the service account carries the identity (Workload Identity).
    storage_secret: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The Secrets in the training namespace that are this team's alone."""
        return tuple(s for s in (self.mlflow_secret, self.storage_secret) if s)


@dataclass(frozen=True)
class EmailChannel:
    """Email through an Airflow SMTP connection (host, port, login: the deployment's)."""

    to: tuple[str, ...]
    from_email: str
    conn_id: str


@dataclass(frozen=True)
class SlackChannel:
    """A Slack channel, posted to through an Airflow Slack API connection (its token)."""

    channel: str
    conn_id: str


@dataclass(frozen=True)
class Notifications:
    """notifications: where task failures, run ends and missed deadlines are reported."""

    email: EmailChannel | None = None
    slack: SlackChannel | None = None

    @property
    def channels(self) -> tuple[EmailChannel | SlackChannel, ...]:
        return tuple(c for c in (self.email, self.slack) if c is not None)


TEAM_IDENTITY_KEYS = ("service_account", "mlflow_secret")
OPTIONAL_TEAM_IDENTITY_KEYS = ("storage_secret",)


@dataclass(frozen=True)
class PlatformConfig:
    environment: str
    namespaces: dict[str, str]
    service_accounts: dict[str, str]
    images: Images
    mlflow_tracking_uri: str
    storage: dict[str, str]
    pools: tuple[Pool, ...]
    # teams.<team>: the team's identities (a cluster stack's document; none locally).
    teams: dict[str, TeamIdentity] = field(default_factory=dict)
    # limits.max_sweep_combinations: the most combinations one run's sweep may have.
    max_sweep_combinations: int = DEFAULT_MAX_SWEEP_COMBINATIONS
    # limits.gpu_quota: GPUs the training namespace's ResourceQuota lets pods request at once.
    gpu_quota: int | None = None
    # airflow_pools: name -> {slots, description, include_deferred}, `airflow pools import` form.
    airflow_pools: dict[str, dict[str, Any]] = field(default_factory=dict)

    # notifications: the channels every DAG reports to (none: the task logs only).
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def datasets_uri(self) -> str:
        return self.storage["datasets_uri"]

    def team_identity(self, team: str) -> TeamIdentity | None:
        return self.teams.get(team)

    def team_owning_account(self, service_account: str | None) -> str | None:
        """The team whose service account this is, if any."""
        return next(
            (t.team for t in self.teams.values() if t.service_account == service_account), None
        )

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise PlatformConfigError(f"no pool named {name!r} in environment {self.environment!r}")


def _require(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise PlatformConfigError(f"{CONFIG_ENV}: missing key {where}{key}")
    return doc[key]


def _parse_pool(raw: dict[str, Any], index: int) -> Pool:
    where = f"pools[{index}]."
    name = _require(raw, "name", where)
    taints = []
    for t_index, taint in enumerate(raw.get("taints") or []):
        t_where = f"{where}taints[{t_index}]."
        effect = _require(taint, "effect", t_where)
        if effect not in TAINT_EFFECTS:
            raise PlatformConfigError(
                f"{CONFIG_ENV}: {t_where}effect {effect!r} is not one of {', '.join(TAINT_EFFECTS)}"
            )
        taints.append(Taint(_require(taint, "key", t_where), taint.get("value", ""), effect))
    gpu = raw.get("gpu") or {}
    count = int(gpu.get("count", 0))
    if gpu and count < 1:
        raise PlatformConfigError(f"{CONFIG_ENV}: {where}gpu.count must be at least 1")
    stands_in_for = gpu.get("stands_in_for") or []
    if not isinstance(stands_in_for, list) or not all(
        isinstance(t, str) and t for t in stands_in_for
    ):
        raise PlatformConfigError(
            f"{CONFIG_ENV}: {where}gpu.stands_in_for must be a list of GPU type names"
        )
    labels = _require(raw, "labels", where)
    if not labels:
        raise PlatformConfigError(f"{CONFIG_ENV}: {where}labels must select the pool's nodes")
    max_nodes = _optional_count(raw, "max_nodes", where, minimum=1)
    airflow_pool = raw.get("airflow_pool")
    if airflow_pool is not None and not (count and isinstance(airflow_pool, str) and airflow_pool):
        raise PlatformConfigError(
            f"{CONFIG_ENV}: {where}airflow_pool must name an Airflow pool, on a GPU pool only"
        )
    return Pool(
        name=name,
        labels=dict(labels),
        taints=tuple(taints),
        gpu_type=gpu.get("type"),
        gpus_per_node=count,
        node_allocatable=dict(raw.get("node_allocatable") or {}),
        stands_in_for=tuple(stands_in_for),
        max_nodes=max_nodes,
        airflow_pool=airflow_pool,
    )


def _optional_count(raw: dict[str, Any], key: str, where: str, minimum: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlatformConfigError(
            f"{CONFIG_ENV}: {where}{key} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def _parse_teams(raw: Any) -> dict[str, TeamIdentity]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PlatformConfigError(f"{CONFIG_ENV}: teams must map each team to its identities")
    return {
        team: TeamIdentity(
            team=team,
            **_identity_strings(
                names, TEAM_IDENTITY_KEYS, f"teams.{team}", OPTIONAL_TEAM_IDENTITY_KEYS
            ),
        )
        for team, names in raw.items()
    }


def _identity_strings(
    names: Any, keys: tuple[str, ...], where: str, optional: tuple[str, ...] = ()
) -> dict[str, str]:
    if not isinstance(names, dict):
        raise PlatformConfigError(f"{CONFIG_ENV}: {where} must be a mapping")
    values = {key: _require(names, key, f"{where}.") for key in keys}
    values.update({key: names[key] for key in optional if key in names})
    for key, value in values.items():
        if not isinstance(value, str) or not value:
            raise PlatformConfigError(f"{CONFIG_ENV}: {where}.{key} must be a non-empty string")
    return values


def _parse_airflow_pools(raw: Any, pools: tuple[Pool, ...]) -> dict[str, dict[str, Any]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PlatformConfigError(f"{CONFIG_ENV}: airflow_pools must map each pool to its slots")
    for name, pool in raw.items():
        slots = pool.get("slots") if isinstance(pool, dict) else None
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise PlatformConfigError(
                f"{CONFIG_ENV}: airflow_pools.{name}.slots must be an integer >= 1"
            )
    for pool in pools:
        if pool.airflow_pool and pool.airflow_pool not in raw:
            raise PlatformConfigError(
                f"{CONFIG_ENV}: pools: {pool.name}.airflow_pool {pool.airflow_pool!r} is not "
                "in airflow_pools"
            )
    return {name: dict(pool) for name, pool in raw.items()}


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = _require(raw, key, where)
    if not isinstance(value, str) or not value.strip():
        raise PlatformConfigError(f"{CONFIG_ENV}: {where}{key} must be a non-empty string")
    return value


def _parse_notifications(raw: Any) -> Notifications:
    if raw is None:
        return Notifications()
    if not isinstance(raw, dict):
        raise PlatformConfigError(f"{CONFIG_ENV}: notifications must be a mapping")
    unknown = sorted(set(raw) - {"email", "slack"})
    if unknown:
        raise PlatformConfigError(
            f"{CONFIG_ENV}: notifications.{unknown[0]} is not a channel (email, slack)"
        )
    email = slack = None
    if raw.get("email") is not None:
        doc = raw["email"]
        if not isinstance(doc, dict):
            raise PlatformConfigError(f"{CONFIG_ENV}: notifications.email must be a mapping")
        to = _require(doc, "to", "notifications.email.")
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(a, str) and "@" in a for a in to)
        ):
            raise PlatformConfigError(
                f"{CONFIG_ENV}: notifications.email.to must be a list of email addresses"
            )
        email = EmailChannel(
            to=tuple(to),
            from_email=_string(doc, "from", "notifications.email."),
            conn_id=_string(doc, "conn_id", "notifications.email."),
        )
    if raw.get("slack") is not None:
        doc = raw["slack"]
        if not isinstance(doc, dict):
            raise PlatformConfigError(f"{CONFIG_ENV}: notifications.slack must be a mapping")
        slack = SlackChannel(
            channel=_string(doc, "channel", "notifications.slack."),
            conn_id=_string(doc, "conn_id", "notifications.slack."),
        )
    return Notifications(email=email, slack=slack)


def _max_sweep_combinations(limits: dict[str, Any]) -> int:
    value = _optional_count(limits, "max_sweep_combinations", "limits.", minimum=1)
    return DEFAULT_MAX_SWEEP_COMBINATIONS if value is None else value


def parse_config(doc: dict[str, Any]) -> PlatformConfig:
    """Turn the JSON document into typed config; a bad key raises with its name."""
    images = _require(doc, "images", "")
    mlflow = _require(doc, "mlflow", "")
    pools = tuple(_parse_pool(raw, i) for i, raw in enumerate(_require(doc, "pools", "")))
    limits = doc.get("limits") or {}
    if not pools:
        raise PlatformConfigError(f"{CONFIG_ENV}: pools is empty")
    return PlatformConfig(
        environment=_require(doc, "environment", ""),
        namespaces=dict(_require(doc, "namespaces", "")),
        service_accounts=dict(_require(doc, "service_accounts", "")),
        images=Images(
            registry=_require(images, "registry", "images."),
            tag=_require(images, "tag", "images."),
            pull_policy=images.get("pull_policy", "IfNotPresent"),
            names=dict(_require(images, "names", "images.")),
        ),
        mlflow_tracking_uri=_require(mlflow, "tracking_uri", "mlflow."),
        storage=dict(_require(doc, "storage", "")),
        pools=pools,
        teams=_parse_teams(doc.get("teams")),
        max_sweep_combinations=_max_sweep_combinations(limits),
        gpu_quota=_optional_count(limits, "gpu_quota", "limits.", minimum=0),
        notifications=_parse_notifications(doc.get("notifications")),
        airflow_pools=_parse_airflow_pools(doc.get("airflow_pools"), pools),
    )


def read_config_document() -> dict[str, Any]:
    """The raw JSON document: ML_PLATFORM_CONFIG (JSON text or a file path), else the default."""
    value = os.environ.get(CONFIG_ENV, "").strip()
    if not value:
        return json.loads(DEFAULT_CONFIG_FILE.read_text())
    if value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise PlatformConfigError(f"{CONFIG_ENV}: not valid JSON ({exc})") from None
    path = Path(value)
    if not path.is_file():
        raise PlatformConfigError(f"{CONFIG_ENV}: {value} is neither JSON nor an existing file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PlatformConfigError(f"{CONFIG_ENV}: {value} is not valid JSON ({exc})") from None


@cache
def _cached(value: str) -> PlatformConfig:
    return parse_config(read_config_document())


def platform_config() -> PlatformConfig:
    """The configuration for this process; re-read whenever ML_PLATFORM_CONFIG changes."""
    return _cached(os.environ.get(CONFIG_ENV, ""))


def runtime() -> Runtime:
    """`kubernetes` (pods) unless ML_PLATFORM_RUNTIME=local (same commands, local processes)."""
    value = os.environ.get(RUNTIME_ENV, "kubernetes").strip().lower()
    if value not in ("kubernetes", "local"):
        raise PlatformConfigError(f"{RUNTIME_ENV}={value!r}: expected 'kubernetes' or 'local'")
    return value  # type: ignore[return-value]
