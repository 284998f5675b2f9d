"""Each team's pods run as the team: its service account, its MLflow login, its storage key.

A cluster stack's platform document names every team's identities (infra's
ml_infra.team_identities makes them). When Airflow parses a DAG, task_policy gives the DAG's
pod tasks in the training namespace their team's account and Secrets (the DAG folder decides
the team, dags/teams/<team>/), and refuses a task that asks for another team's account or
Secrets (MLP207). Kubernetes lets any pod in a namespace mount any Secret there, so
pod_mutation_hook checks the finished pod once more: a pod may reference only the Secrets of
the team whose account it runs as (the deployer: of the team in DEPLOYER_TEAM).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s

from ml_platform.deployer_rules import TEAM_ENV
from ml_platform.settings import PlatformConfig, TeamIdentity, runtime
from ml_platform.violations import Violation

CODE = "MLP207"
FIX = (
    "leave service_account_name and the credentials Secrets to the platform: a team's tasks "
    "get the team's own (infra: ml-platform:teams)"
)
UNSET_ACCOUNTS = (None, "", "default")


def _as_list(value: Any) -> list[Any]:
    return list(value or [])


def pod_secret_names(pod: k8s.V1Pod) -> set[str]:
    """Every Secret a pod's containers or volumes reference."""
    names: set[str] = set()
    spec = pod.spec
    for container in _as_list(spec.containers) + _as_list(spec.init_containers):
        for source in _as_list(container.env_from):
            if source.secret_ref is not None:
                names.add(source.secret_ref.name)
        for var in _as_list(container.env):
            ref = var.value_from.secret_key_ref if var.value_from else None
            if ref is not None:
                names.add(ref.name)
    for volume in _as_list(spec.volumes):
        if volume.secret is not None:
            names.add(volume.secret.secret_name)
        if volume.projected is not None:
            names.update(s.secret.name for s in _as_list(volume.projected.sources) if s.secret)
    return names


def pod_owner(pod: k8s.V1Pod, config: PlatformConfig) -> str | None:
    """The team a pod acts for: by its team service account, or the deployer's DEPLOYER_TEAM."""
    account = pod.spec.service_account_name
    team = config.team_owning_account(account)
    if team is not None or account != config.service_accounts["deployer"]:
        return team
    for container in pod.spec.containers or []:
        for var in container.env or []:
            if var.name == TEAM_ENV and var.value:
                return var.value
    return None


def foreign_secrets(pod: k8s.V1Pod, config: PlatformConfig) -> list[tuple[str, str]]:
    """(secret, its team) for each Secret the pod references that another team owns."""
    owner = pod_owner(pod, config)
    owned_by = {name: t.team for t in config.teams.values() for name in t.secrets}
    return sorted(
        (name, owned_by[name])
        for name in pod_secret_names(pod)
        if name in owned_by and owned_by[name] != owner
    )


def pod_identity_violations(pod: k8s.V1Pod, config: PlatformConfig, where: str) -> list[Violation]:
    """MLP207 for a finished pod that references another team's Secrets."""
    account = pod.spec.service_account_name
    return [
        Violation(
            CODE,
            f"{where} runs as {account!r} but references {secret!r}, team {team!r}'s credentials",
            FIX,
        )
        for secret, team in foreign_secrets(pod, config)
    ]


def _get(task: Any, name: str) -> Any:
    kwargs = getattr(task, "partial_kwargs", None)
    return kwargs.get(name) if kwargs is not None else getattr(task, name, None)


def _set(task: Any, name: str, value: Any) -> None:
    kwargs = getattr(task, "partial_kwargs", None)
    if kwargs is not None:
        kwargs[name] = value
    else:
        setattr(task, name, value)


def _runs_in_training(task: Any, config: PlatformConfig) -> bool:
    # As pod_mutation_hook places it: no namespace, default and airflow mean training.
    namespace = _get(task, "namespace")
    return namespace in (None, "", "default", config.namespaces["airflow"]) or (
        namespace == config.namespaces["training"]
    )


def task_identity_violations(
    task: Any, config: PlatformConfig, team: str, where: str
) -> list[Violation]:
    """MLP207 for a pod task of `team` that names another account or other teams' Secrets."""
    if not config.teams or not _runs_in_training(task, config):
        return []
    identity = config.team_identity(team)
    if identity is None and runtime() == "local":
        return []  # no identities are used there; make check-dags still names each stack
    if identity is None:
        known = ", ".join(sorted(config.teams))
        return [
            Violation(
                CODE,
                f"{where}: team {team!r} has no identities on stack {config.environment!r} "
                f"(teams there: {known})",
                f"the platform team adds {team!r} to ml-platform:teams in "
                f"infra/Pulumi.{config.environment}.yaml",
            )
        ]
    found = []
    account = _get(task, "service_account_name")
    allowed = (
        *UNSET_ACCOUNTS,
        identity.service_account,
        config.service_accounts["training"],
        config.service_accounts["deployer"],  # MLP206 decides who may
    )
    if account not in allowed:
        owner = config.team_owning_account(account)
        whose = f"team {owner!r}'s account" if owner else "not the team's account"
        found.append(Violation(CODE, f"{where} runs as service account {account!r} ({whose})", FIX))
    owned_by = {name: t.team for t in config.teams.values() for name in t.secrets}
    for secret in _task_secret_names(task):
        if owned_by.get(secret, team) != team:
            found.append(
                Violation(
                    CODE,
                    f"{where} references {secret!r}, team {owned_by[secret]!r}'s credentials",
                    FIX,
                )
            )
    return found


def _task_secret_names(task: Any) -> set[str]:
    names = {s.secret for s in _as_list(_get(task, "secrets"))}
    for source in _as_list(_get(task, "env_from")):
        ref = getattr(source, "secret_ref", None)
        if ref is not None:
            names.add(ref.name)
    for volume in _as_list(_get(task, "volumes")):
        if getattr(volume, "secret", None) is not None:
            names.add(volume.secret.secret_name)
    env = _get(task, "env_vars")
    if isinstance(env, list):
        for var in env:
            ref = var.value_from.secret_key_ref if getattr(var, "value_from", None) else None
            if ref is not None:
                names.add(ref.name)
    return names


def assign_team_identity(task: Any, config: PlatformConfig, team: str) -> TeamIdentity | None:
    """Give a pod task of `team` (training namespace) the team's account and Secrets: the
    team's service account unless it runs as the deployer, the MLflow login, and the storage
    key unless it is the deployer (which reads no data). Returns the identity given."""
    identity = config.team_identity(team)
    if identity is None or not _runs_in_training(task, config):
        return None
    deployer = _get(task, "service_account_name") == config.service_accounts["deployer"]
    if not deployer:
        _set(task, "service_account_name", identity.service_account)
    wanted = [identity.mlflow_secret] if deployer else list(identity.secrets)
    secrets = _as_list(_get(task, "secrets"))
    have = {s.secret for s in secrets}
    _set(
        task,
        "secrets",
        secrets + [Secret("env", None, name) for name in wanted if name not in have],
    )
    return identity
