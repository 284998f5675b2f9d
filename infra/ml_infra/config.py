"""The stack config (infra/Pulumi.<stack>.yaml) as typed, validated dataclasses.

`parse_stack_config` checks everything before the program declares a single resource and
raises StackConfigError naming the offending key, e.g.
`ml-platform:pools[1].machine_type: m6i.xlarge has no GPU ...`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

from ml_infra import conventions as conv
from ml_infra.config_reader import Section, StackConfigError
from ml_infra.machine_types import gpu_machine_types, gpu_offer, has_builtin_gpus

PROJECT = "ml-platform"
CLOUDS = ("kind", "aws", "gcp")
# KubernetesExecutor is left out on purpose: it builds worker pods in the scheduler, which
# runs the pod_mutation_hook where the DAG bundle (and so ml_platform) is not importable.
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
REQUIRED_NAMESPACES = ("airflow", "training", "serving", "mlflow", "storage")
REQUIRED_SERVICE_ACCOUNTS = ("training", "deployer", "serving")
REQUIRED_IMAGES = ("trainer", "deployer")
# Namespaces Kubernetes runs itself: a default-deny policy or quota there breaks the cluster.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Tags that move: on a cloud stack an image must be the one that was reviewed and tested.
# The owner of the DAGs at the top of dags/ (ml_platform.model_specs.PLATFORM_TEAM).
PLATFORM_TEAM = "ml-platform"
# "team-<team>-storage" and the like stay within a Kubernetes name's 63 characters.
MAX_TEAM_NAME = 50
MUTABLE_TAGS = ("latest", "main", "master", "dev", "edge", "nightly", "stable")
# Provider settings that belong to one organisation, set with `pulumi config set`, not
# committed: the GCP project.
GCP_PROJECT_KEY = "gcp:project"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONN_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+-?\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# How Airflow talks to the SMTP server: STARTTLS on 587, TLS from the start on 465, or plain.
SMTP_SECURITY = ("starttls", "ssl", "none")
# Secrets of the notifications, set with `pulumi config set --secret`, never in values.
SMTP_PASSWORD_KEY = "notifications_smtp_password"
SLACK_TOKEN_KEY = "notifications_slack_token"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class Gpu:
    type: str
    count: int
    # kind only: the production GPU types these emulated GPUs stand in for, so a DAG pinned
    # to one of them is placed (and checked) on kind too.
    stands_in_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pool:
    name: str
    gpu: Gpu | None
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    node_allocatable: dict[str, str]
    machine_type: str | None = None  # cloud pools
    min_size: int = 0
    max_size: int = 0
    disk_gb: int = 0
    nodes: tuple[str, ...] = ()  # kind pools: the kind worker nodes that form the pool

    @property
    def has_gpus(self) -> bool:
        return self.gpu is not None

    @property
    def max_nodes(self) -> int:
        """The most nodes the pool ever has: kind's listed nodes, the autoscaler's max."""
        return len(self.nodes) if self.nodes else self.max_size


@dataclass(frozen=True)
class Images:
    registry: str
    tag: str
    pull_policy: str
    names: dict[str, str]

    def ref(self, image: str) -> str:
        """A platform image's full reference, as ml_platform.settings.Images.ref makes it."""
        return f"{self.registry}/{self.names[image]}:{self.tag}"


@dataclass(frozen=True)
class Buckets:
    datasets: str
    artifacts: str
    logs: str


@dataclass(frozen=True)
class Storage:
    buckets: Buckets
    # The MLflow server's storage Secret; None on GCP, where no storage Secret exists.
    credentials_secret: str | None
    airflow_connection: str


@dataclass(frozen=True)
class Mlflow:
    port: int
    credentials_secret: str
    admin_user: str


@dataclass(frozen=True)
class Dags:
    source: str  # "local": the checkout mounted into kind's nodes; "git": a GitDagBundle
    node_path: str | None = None
    repo_url: str | None = None
    ref: str = "main"
    subdir: str = "dags"
    git_conn_id: str | None = None


@dataclass(frozen=True)
class Airflow:
    executor: str
    image_repository: str
    image_tag: str
    dags: Dags
    admin_user: str


@dataclass(frozen=True)
class Postgres:
    version: str
    storage_gb: int
    deletion_protection: bool
    instance_class: str | None = None  # aws
    multi_az: bool = False  # aws
    tier: str | None = None  # gcp
    high_availability: bool = False  # gcp


@dataclass(frozen=True)
class AwsCluster:
    region: str
    kubernetes_version: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    # Who may reach the cluster's public API endpoint (an organisation's own ranges).
    api_allowed_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcpCluster:
    project: str
    region: str
    zones: tuple[str, ...]
    release_channel: str
    subnet_cidr: str
    pods_cidr: str
    services_cidr: str
    api_allowed_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindCluster:
    context: str


@dataclass(frozen=True)
class EmailNotifications:
    to: tuple[str, ...]
    sender: str
    smtp_host: str
    smtp_port: int
    security: str  # SMTP_SECURITY
    smtp_user: str | None = None  # its password: the secret SMTP_PASSWORD_KEY


@dataclass(frozen=True)
class SlackNotifications:
    channel: str  # the token: the secret SLACK_TOKEN_KEY


@dataclass(frozen=True)
class Notifications:
    """Where Airflow reports failed tasks, every run's end and missed deadlines."""

    email: EmailNotifications | None = None
    slack: SlackNotifications | None = None


@dataclass(frozen=True)
class StackConfig:
    environment: str
    cloud: str
    namespaces: dict[str, str]
    service_accounts: dict[str, str]
    images: Images
    storage: Storage
    pools: tuple[Pool, ...]
    training_gpu_quota: int
    mlflow: Mlflow
    airflow: Airflow
    postgres: Postgres
    aws: AwsCluster | None = None
    gcp: GcpCluster | None = None
    kind: KindCluster | None = None
    # The most combinations one training run's sweep may have (ML_PLATFORM_CONFIG limits).
    max_sweep_combinations: int = 16
    # The ML teams (dags/teams/<team>/) that get identities of their own on this stack.
    teams: tuple[str, ...] = ()
    # notifications: the channels; none configured, failures are seen on the Airflow UI only.
    notifications: Notifications = Notifications()

    @property
    def gpu_pools(self) -> tuple[Pool, ...]:
        return tuple(p for p in self.pools if p.has_gpus)


def _check_dns_label(value: str, key: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise StackConfigError(
            f"{key}: {value!r} is not a valid Kubernetes name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    return value


def _check_label_key(value: str, key: str) -> str:
    prefix, _, name = value.rpartition("/")
    if (prefix and not all(_DNS_LABEL.match(p) for p in prefix.split("."))) or not (
        len(name) <= 63 and _LABEL_NAME.match(name)
    ):
        raise StackConfigError(f"{key}: {value!r} is not a valid label or taint key")
    return value


def _check_label_value(value: str, key: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise StackConfigError(f"{key}: {value!r} is not a valid label value")
    return value


def _check_bucket(value: str, key: str) -> str:
    if not _BUCKET.match(value) or ".." in value or _looks_like_ip(value):
        raise StackConfigError(
            f"{key}: {value!r} is not a valid bucket name (3-63 lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit)"
        )
    return value


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_cidr(value: str, key: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise StackConfigError(f"{key}: {value!r} is not a CIDR block") from None
    return value


def _api_allowed_cidrs(section: Section) -> tuple[str, ...]:
    """The ranges allowed to the public Kubernetes API endpoint: required, never everyone."""
    key = section.key("api_allowed_cidrs")
    cidrs = section.list("api_allowed_cidrs")
    if not cidrs:
        raise StackConfigError(
            f"{key}: list the ranges that may reach the Kubernetes API (office, VPN, CI): "
            f"pulumi config set --path '{key.partition(':')[2]}[0]' <cidr>"
        )
    for index, cidr in enumerate(cidrs):
        where = f"{key}[{index}]"
        if not isinstance(cidr, str):
            raise StackConfigError(f"{where}: expected a CIDR block, got {cidr!r}")
        network = ipaddress.ip_network(_check_cidr(cidr, where), strict=False)
        if network.prefixlen == 0:
            raise StackConfigError(
                f"{where}: {cidr!r} opens the Kubernetes API to the whole internet; list your "
                "own ranges"
            )
    return tuple(cidrs)


def _check_quantity(value: str, key: str) -> str:
    try:
        parse_quantity(value)
    except ValueError:
        raise StackConfigError(f"{key}: {value!r} is not a Kubernetes quantity") from None
    return value


def _names(section: Section, name: str, required: tuple[str, ...]) -> dict[str, str]:
    values = section.string_map(name)
    for wanted in required:
        if wanted not in values:
            raise StackConfigError(f"{section.key(name)}.{wanted}: required key is missing")
    seen: dict[str, str] = {}
    for item, value in values.items():
        key = f"{section.key(name)}.{item}"
        _check_dns_label(value, key)
        if value in seen:
            # One name for two roles merges their permissions, policies and quotas.
            raise StackConfigError(f"{key}: {value!r} is already {name}.{seen[value]}")
        seen[value] = item
        if name == "namespaces" and value in RESERVED_NAMESPACES:
            raise StackConfigError(
                f"{key}: {value!r} is run by Kubernetes itself; the platform's policies and "
                "quotas there would break the cluster"
            )
    return values


def _taints(pool: Section) -> list[Taint]:
    taints = []
    for index, raw in enumerate(pool.list("taints", required=False)):
        taint = Section(raw, f"{pool.key('taints')}[{index}]")
        effect = taint.str("effect")
        if effect not in conv.TAINT_EFFECTS:
            raise StackConfigError(
                f"{taint.key('effect')}: {effect!r} is not one of {', '.join(conv.TAINT_EFFECTS)}"
            )
        key = _check_label_key(taint.str("key"), taint.key("key"))
        value = _check_label_value(taint.str("value", default=""), taint.key("value"))
        taint.done()
        taints.append(Taint(key, value, effect))
    return taints


def _gpu(pool: Section, cloud: str, machine_type: str | None) -> Gpu | None:
    section = pool.section("gpu", required=False)
    if section is None:
        if machine_type and has_builtin_gpus(cloud, machine_type):
            offer = gpu_offer(cloud, machine_type)
            raise StackConfigError(
                f"{pool.key('machine_type')}: {machine_type} carries {offer.gpu_type} GPUs "
                f"but the pool declares none: add {pool.key('gpu')} or pick a CPU machine type"
            )
        return None
    count = section.int("count")
    if count < 1:
        raise StackConfigError(f"{section.key('count')}: must be at least 1, got {count}")
    gpu_type = _check_label_value(section.str("type"), section.key("type"))
    stands_in_for = _stands_in_for(section, cloud, gpu_type)
    section.done()
    if cloud == "kind":
        return Gpu(gpu_type, count, stands_in_for)
    offer = gpu_offer(cloud, machine_type or "")
    if offer is None:
        raise StackConfigError(
            f"{pool.key('machine_type')}: {machine_type} has no GPU; a GPU pool on {cloud} "
            f"needs one of: {', '.join(gpu_machine_types(cloud))}"
        )
    if offer.gpu_type != gpu_type:
        raise StackConfigError(
            f"{section.key('type')}: {machine_type} carries {offer.gpu_type}, not {gpu_type}"
        )
    if count not in offer.counts:
        counts = ", ".join(str(c) for c in offer.counts)
        raise StackConfigError(
            f"{section.key('count')}: {machine_type} takes {counts} GPU(s) per node, not {count}"
        )
    return Gpu(gpu_type, count)


def _stands_in_for(gpu: Section, cloud: str, gpu_type: str) -> tuple[str, ...]:
    key = gpu.key("stands_in_for")
    raw = gpu.list("stands_in_for", required=False)
    if raw and cloud != "kind":
        raise StackConfigError(
            f"{key}: only kind's emulated GPUs stand in for other types; a {cloud} pool's "
            "GPUs are the type its machine carries"
        )
    types: list[str] = []
    for index, value in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(value, str):
            raise StackConfigError(f"{where}: expected a GPU type name, got {value!r}")
        _check_label_value(value, where)
        if value == gpu_type:
            raise StackConfigError(f"{where}: {value!r} is the pool's own gpu.type")
        if value in types:
            raise StackConfigError(f"{where}: {value!r} is listed twice")
        types.append(value)
    return tuple(types)


def _pool(raw: Any, index: int, cloud: str) -> Pool:
    pool = Section(raw, f"{PROJECT}:pools[{index}]")
    name = _check_dns_label(pool.str("name"), pool.key("name"))
    machine_type = nodes = None
    min_size = max_size = disk_gb = 0
    if cloud == "kind":
        nodes = tuple(pool.list("nodes"))
        if not nodes:
            raise StackConfigError(f"{pool.key('nodes')}: a kind pool needs at least one node")
        for n_index, node in enumerate(nodes):
            if not isinstance(node, str) or not node:
                raise StackConfigError(f"{pool.key('nodes')}[{n_index}]: expected a node name")
    else:
        machine_type = pool.str("machine_type")
        min_size = pool.int("min_size", minimum=0)
        max_size = pool.int("max_size", minimum=1)
        if max_size < min_size:
            raise StackConfigError(
                f"{pool.key('max_size')}: {max_size} is below min_size {min_size}"
            )
        disk_gb = pool.int("disk_gb", minimum=20, default=100)
    gpu = _gpu(pool, cloud, machine_type)

    labels = {conv.POOL_LABEL: name}
    taints = []
    if gpu:
        labels |= {conv.GPU_PRESENT_LABEL: "true", conv.GPU_TYPE_LABEL: gpu.type}
        taints.append(Taint(conv.GPU_TAINT_KEY, conv.GPU_TAINT_VALUE, "NoSchedule"))
    extra_labels = pool.string_map("labels", required=False)
    for key, value in extra_labels.items():
        where = f"{pool.key('labels')}.{key}"
        _check_label_key(key, where)
        _check_label_value(value, where)
        if key in labels and labels[key] != value:
            raise StackConfigError(
                f"{where}: the platform sets {key}={labels[key]} on this pool; "
                "a pool cannot override it"
            )
    labels |= extra_labels
    for taint in _taints(pool):
        if taint not in taints:
            taints.append(taint)

    allocatable = pool.string_map("node_allocatable")
    for resource in ("cpu", "memory"):
        if resource not in allocatable:
            raise StackConfigError(f"{pool.key('node_allocatable')}.{resource}: required")
    for resource, quantity in allocatable.items():
        if resource not in ("cpu", "memory"):
            raise StackConfigError(
                f"{pool.key('node_allocatable')}.{resource}: only cpu and memory are known"
            )
        _check_quantity(quantity, f"{pool.key('node_allocatable')}.{resource}")
    pool.done()
    return Pool(
        name=name,
        gpu=gpu,
        labels=labels,
        taints=tuple(taints),
        node_allocatable=allocatable,
        machine_type=machine_type,
        min_size=min_size,
        max_size=max_size,
        disk_gb=disk_gb,
        nodes=nodes or (),
    )


def _pools(root: Section, cloud: str) -> tuple[Pool, ...]:
    raw_pools = root.list("pools")
    if not raw_pools:
        raise StackConfigError(f"{root.key('pools')}: at least one pool is required")
    pools = tuple(_pool(raw, i, cloud) for i, raw in enumerate(raw_pools))
    seen_names: set[str] = set()
    seen_nodes: dict[str, str] = {}
    for index, pool in enumerate(pools):
        if pool.name in seen_names:
            raise StackConfigError(f"{PROJECT}:pools[{index}].name: {pool.name!r} is used twice")
        seen_names.add(pool.name)
        for node in pool.nodes:
            if node in seen_nodes:
                raise StackConfigError(
                    f"{PROJECT}:pools[{index}].nodes: {node} is already in pool {seen_nodes[node]}"
                )
            seen_nodes[node] = pool.name
    real_types = {p.gpu.type: p.name for p in pools if p.gpu}
    for index, pool in enumerate(pools):
        for s_index, stand_in in enumerate(pool.gpu.stands_in_for if pool.gpu else ()):
            if stand_in in real_types:
                raise StackConfigError(
                    f"{PROJECT}:pools[{index}].gpu.stands_in_for[{s_index}]: pool "
                    f"{real_types[stand_in]} has real {stand_in} GPUs; a stand-in for them "
                    "would take their work"
                )
    if not any(not p.has_gpus and not _hard_taints(p) for p in pools):
        raise StackConfigError(
            f"{root.key('pools')}: needs a CPU pool without NoSchedule/NoExecute taints, "
            "for everything that asks for no GPU"
        )
    return pools


def _hard_taints(pool: Pool) -> list[Taint]:
    return [t for t in pool.taints if t.effect in ("NoSchedule", "NoExecute")]


def _images(root: Section, cloud: str) -> Images:
    images = root.section("images")
    names = images.string_map("names")
    for wanted in REQUIRED_IMAGES:
        if wanted not in names:
            raise StackConfigError(f"{images.key('names')}.{wanted}: required key is missing")
    tag = images.str("tag")
    if cloud != "kind" and (tag in MUTABLE_TAGS or not tag):
        raise StackConfigError(
            f"{images.key('tag')}: {tag!r} is a tag that moves; a {cloud} stack runs the "
            "release it was tested with (a version such as 2026.11, or a commit)"
        )
    result = Images(
        registry=images.str("registry"),
        tag=tag,
        pull_policy=images.choice("pull_policy", PULL_POLICIES, default="IfNotPresent"),
        names=names,
    )
    images.done()
    return result


def _storage(root: Section, cloud: str) -> Storage:
    storage = root.section("storage")
    buckets = storage.section("buckets")
    values = {
        name: _check_bucket(buckets.str(name), buckets.key(name))
        for name in ("datasets", "artifacts", "logs")
    }
    buckets.done()
    if len(set(values.values())) != len(values):
        raise StackConfigError(f"{storage.key('buckets')}: bucket names must be distinct")
    connection = storage.str("airflow_connection")
    if not _CONN_ID.match(connection):
        raise StackConfigError(
            f"{storage.key('airflow_connection')}: {connection!r} is not a connection id "
            "(lowercase letters, digits and '_')"
        )
    secret_key = storage.key("credentials_secret")
    if cloud == "gcp":
        if storage.optional_str("credentials_secret") is not None:
            raise StackConfigError(
                f"{secret_key}: not used on gcp (pods reach GCS with Workload Identity, no "
                "Secret holds storage credentials): remove the key"
            )
        credentials_secret = None
    else:
        credentials_secret = _check_dns_label(storage.str("credentials_secret"), secret_key)
    result = Storage(
        buckets=Buckets(**values),
        credentials_secret=credentials_secret,
        airflow_connection=connection,
    )
    storage.done()
    return result


def _mlflow(root: Section) -> Mlflow:
    mlflow = root.section("mlflow")
    result = Mlflow(
        port=mlflow.int("port", minimum=1),
        credentials_secret=_check_dns_label(
            mlflow.str("credentials_secret"), mlflow.key("credentials_secret")
        ),
        admin_user=mlflow.str("admin_user"),
    )
    if result.port > 65535:
        raise StackConfigError(f"{mlflow.key('port')}: {result.port} is not a port")
    mlflow.done()
    return result


def _dags(airflow: Section, cloud: str) -> Dags:
    dags = airflow.section("dags")
    source = dags.choice("source", ("local", "git"))
    if source == "local":
        if cloud != "kind":
            raise StackConfigError(
                f"{dags.key('source')}: 'local' mounts a checkout into kind's nodes; "
                f"a {cloud} cluster reads DAGs with source 'git'"
            )
        node_path = dags.str("node_path")
        if not node_path.startswith("/"):
            raise StackConfigError(f"{dags.key('node_path')}: must be an absolute path")
        result = Dags(source=source, node_path=node_path, subdir=dags.str("subdir", "dags"))
    else:
        repo_url = dags.str("repo_url")
        if not repo_url.startswith(("https://", "git@", "ssh://")):
            raise StackConfigError(f"{dags.key('repo_url')}: {repo_url!r} is not a git URL")
        result = Dags(
            source=source,
            repo_url=repo_url,
            ref=dags.str("ref", "main"),
            subdir=dags.str("subdir", "dags"),
            git_conn_id=dags.optional_str("git_conn_id"),
        )
    dags.done()
    return result


def _airflow(root: Section, cloud: str) -> Airflow:
    airflow = root.section("airflow")
    image = airflow.section("image")
    result = Airflow(
        executor=airflow.choice("executor", EXECUTORS),
        image_repository=image.str("repository"),
        image_tag=image.str("tag"),
        dags=_dags(airflow, cloud),
        admin_user=airflow.str("admin_user"),
    )
    image.done()
    airflow.done()
    return result


def _postgres(root: Section, cloud: str) -> Postgres:
    pg = root.section("postgres")
    version = pg.str("version")
    if not version.isdigit():
        raise StackConfigError(f"{pg.key('version')}: expected a major version like '17'")
    common = {
        "version": version,
        "storage_gb": pg.int("storage_gb", minimum=1),
        "deletion_protection": pg.bool("deletion_protection", default=False),
    }
    if cloud == "aws":
        result = Postgres(
            **common, instance_class=pg.str("instance_class"), multi_az=pg.bool("multi_az", False)
        )
    elif cloud == "gcp":
        result = Postgres(
            **common, tier=pg.str("tier"), high_availability=pg.bool("high_availability", False)
        )
    else:
        result = Postgres(**common)
    pg.done()
    return result


def _aws(root: Section) -> AwsCluster:
    aws = root.section("aws")
    region = aws.str("region")
    if not _REGION.match(region):
        raise StackConfigError(f"{aws.key('region')}: {region!r} is not an AWS region")
    zones = tuple(aws.list("availability_zones"))
    if len(zones) < 2:
        raise StackConfigError(
            f"{aws.key('availability_zones')}: EKS needs subnets in at least two zones"
        )
    for index, zone in enumerate(zones):
        if not isinstance(zone, str) or not zone.startswith(region):
            raise StackConfigError(
                f"{aws.key('availability_zones')}[{index}]: {zone!r} is not a zone of {region}"
            )
    result = AwsCluster(
        region=region,
        kubernetes_version=aws.str("kubernetes_version"),
        vpc_cidr=_check_cidr(aws.str("vpc_cidr"), aws.key("vpc_cidr")),
        availability_zones=zones,
        api_allowed_cidrs=_api_allowed_cidrs(aws),
    )
    aws.done()
    return result


def _gcp(root: Section, project: str | None) -> GcpCluster:
    gcp = root.section("gcp")
    if not project:
        raise StackConfigError(
            f"{GCP_PROJECT_KEY}: required key is missing "
            f"(pulumi config set {GCP_PROJECT_KEY} <your project id>)"
        )
    region = gcp.str("region")
    if not _REGION.match(region):
        raise StackConfigError(f"{gcp.key('region')}: {region!r} is not a GCP region")
    zones = tuple(gcp.list("zones"))
    if not zones:
        raise StackConfigError(f"{gcp.key('zones')}: at least one zone is required")
    for index, zone in enumerate(zones):
        if not isinstance(zone, str) or not zone.startswith(region + "-"):
            raise StackConfigError(f"{gcp.key('zones')}[{index}]: {zone!r} is not in {region}")
    result = GcpCluster(
        project=project,
        region=region,
        zones=zones,
        release_channel=gcp.choice("release_channel", ("RAPID", "REGULAR", "STABLE")),
        subnet_cidr=_check_cidr(gcp.str("subnet_cidr"), gcp.key("subnet_cidr")),
        pods_cidr=_check_cidr(gcp.str("pods_cidr"), gcp.key("pods_cidr")),
        services_cidr=_check_cidr(gcp.str("services_cidr"), gcp.key("services_cidr")),
        api_allowed_cidrs=_api_allowed_cidrs(gcp),
    )
    gcp.done()
    return result


def team_service_account(team: str) -> str:
    """The service account a team's pods run as (ml_infra.team_identities)."""
    return f"team-{team}"


def _teams(root: Section, service_accounts: dict[str, str]) -> tuple[str, ...]:
    key = root.key("teams")
    teams: list[str] = []
    for index, team in enumerate(root.list("teams", required=False)):
        where = f"{key}[{index}]"
        if not isinstance(team, str) or len(team) > MAX_TEAM_NAME:
            raise StackConfigError(
                f"{where}: expected a team name of at most {MAX_TEAM_NAME} characters, got {team!r}"
            )
        _check_dns_label(team, where)
        if team == PLATFORM_TEAM:
            raise StackConfigError(f"{where}: {team!r} is the platform's own team, always there")
        if team in teams:
            raise StackConfigError(f"{where}: {team!r} is listed twice")
        account = team_service_account(team)
        taken = [role for role, name in service_accounts.items() if name == account]
        if taken:
            raise StackConfigError(
                f"{where}: the team's service account {account!r} is already "
                f"service_accounts.{taken[0]}"
            )
        teams.append(team)
    return tuple(teams)


def _email_notifications(notifications: Section, root: Section) -> EmailNotifications | None:
    email = notifications.section("email", required=False)
    if email is None:
        return None
    to = email.list("to")
    if not to:
        raise StackConfigError(f"{email.key('to')}: list at least one recipient")
    for index, address in enumerate(to):
        if not isinstance(address, str) or not _EMAIL.match(address):
            raise StackConfigError(f"{email.key('to')}[{index}]: {address!r} is not an address")
    sender = email.str("from")
    if not _EMAIL.match(sender):
        raise StackConfigError(f"{email.key('from')}: {sender!r} is not an email address")
    port = email.int("smtp_port", minimum=1, default=587)
    if port > 65535:
        raise StackConfigError(f"{email.key('smtp_port')}: {port} is not a port")
    user = email.optional_str("smtp_user")
    password = root.optional_str(SMTP_PASSWORD_KEY)
    if user and password is None:
        raise StackConfigError(
            f"{PROJECT}:{SMTP_PASSWORD_KEY}: required with {email.key('smtp_user')} "
            f"(pulumi config set --secret {PROJECT}:{SMTP_PASSWORD_KEY} <password>)"
        )
    if password is not None and not user:
        raise StackConfigError(
            f"{PROJECT}:{SMTP_PASSWORD_KEY}: set, but {email.key('smtp_user')} is not: "
            "a password needs the login it belongs to"
        )
    result = EmailNotifications(
        to=tuple(to),
        sender=sender,
        smtp_host=email.str("smtp_host"),
        smtp_port=port,
        security=email.choice("security", SMTP_SECURITY, default="starttls"),
        smtp_user=user,
    )
    email.done()
    return result


def _slack_notifications(notifications: Section, root: Section) -> SlackNotifications | None:
    slack = notifications.section("slack", required=False)
    token = root.optional_str(SLACK_TOKEN_KEY)
    if slack is None:
        if token is not None:
            raise StackConfigError(
                f"{PROJECT}:{SLACK_TOKEN_KEY}: set, but {notifications.key('slack')} is not"
            )
        return None
    channel = slack.str("channel")
    if not channel.startswith(("#", "C", "G")):
        raise StackConfigError(
            f"{slack.key('channel')}: {channel!r} is not a channel ('#name' or a channel id)"
        )
    if token is None:
        raise StackConfigError(
            f"{PROJECT}:{SLACK_TOKEN_KEY}: required with {slack.key('channel')} "
            f"(pulumi config set --secret {PROJECT}:{SLACK_TOKEN_KEY} <bot token>)"
        )
    slack.done()
    return SlackNotifications(channel=channel)


def _notifications(root: Section) -> Notifications:
    """notifications: email and/or Slack; their password and token are secrets of their own."""
    notifications = root.section("notifications", required=False)
    if notifications is None:
        for key in (SMTP_PASSWORD_KEY, SLACK_TOKEN_KEY):
            if root.optional_str(key) is not None:
                raise StackConfigError(
                    f"{PROJECT}:{key}: set, but {root.key('notifications')} is not"
                )
        return Notifications()
    result = Notifications(
        email=_email_notifications(notifications, root),
        slack=_slack_notifications(notifications, root),
    )
    notifications.done()
    if result.email is None and result.slack is None:
        raise StackConfigError(
            f"{root.key('notifications')}: configure email or slack, or leave the key out"
        )
    return result


def _kind(root: Section) -> KindCluster:
    kind = root.section("kind")
    result = KindCluster(context=kind.str("context"))
    kind.done()
    return result


def parse_stack_config(
    environment: str, values: Mapping[str, Any], provider_settings: Mapping[str, Any]
) -> StackConfig:
    """Validate the `ml-platform:*` values of one stack (already decoded from YAML/JSON).

    `provider_settings` holds other namespaces' keys the program needs (gcp:project).
    """
    _check_dns_label(environment, "stack name")
    root = Section(values, PROJECT)
    cloud = root.choice("cloud", CLOUDS)
    namespaces = _names(root, "namespaces", REQUIRED_NAMESPACES)
    service_accounts = _names(root, "service_accounts", REQUIRED_SERVICE_ACCOUNTS)
    pools = _pools(root, cloud)
    training = root.section("training")
    gpu_quota = training.int("gpu_quota", minimum=0)
    largest = max((p.gpu.count for p in pools if p.gpu), default=0)
    if gpu_quota < largest:
        raise StackConfigError(
            f"{training.key('gpu_quota')}: {gpu_quota} is below the {largest} GPU(s) of the "
            "largest GPU node, so a pod using a whole node could never start"
        )
    gpus_ever = sum(p.gpu.count * p.max_nodes for p in pools if p.gpu)
    if gpu_quota > gpus_ever:
        held = f"the GPU pools hold at most {gpus_ever}" if gpus_ever else "no pool has GPUs"
        raise StackConfigError(
            f"{training.key('gpu_quota')}: {gpu_quota} GPUs, but {held}: trials would be "
            "admitted that no node can run"
        )
    max_sweep = training.int("max_sweep_combinations", minimum=1, default=16)
    training.done()
    config = StackConfig(
        environment=environment,
        cloud=cloud,
        namespaces=namespaces,
        service_accounts=service_accounts,
        images=_images(root, cloud),
        storage=_storage(root, cloud),
        pools=pools,
        training_gpu_quota=gpu_quota,
        mlflow=_mlflow(root),
        airflow=_airflow(root, cloud),
        postgres=_postgres(root, cloud),
        aws=_aws(root) if cloud == "aws" else None,
        gcp=_gcp(root, provider_settings.get(GCP_PROJECT_KEY)) if cloud == "gcp" else None,
        kind=_kind(root) if cloud == "kind" else None,
        max_sweep_combinations=max_sweep,
        teams=_teams(root, service_accounts),
        notifications=_notifications(root),
    )
    root.done()
    return config
