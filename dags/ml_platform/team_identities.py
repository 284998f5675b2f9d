"""Each team's pods run as the team: its service account, its MLflow login, its storage identity
(its storage Secret where the stack has one; on GCP the service account alone carries it).

A cluster stack's platform document names every team's identities (infra's
ml_infra.team_identities makes them). When Airflow parses a DAG, task_policy gives the DAG's
pod tasks in the training namespace their team's account and Secrets (the DAG folder decides
the team, dags/teams/<team>/), and refuses a task that asks for another team's account or
Secrets (MLP207). Kubernetes lets any pod in a namespace mount any Secret there, so
pod_mutation_hook checks the finished pod once more: a pod may reference only the Secrets of
the team whose account it runs as (the deployer: of the team in DEPLOYER_TEAM).

A model's servers get a read-only MLflow login of that model alone, named from the model
name (ml_platform.serving_identity, the rule by which infra creates one for every model spec
at `pulumi up`): a deploy step is given its model's (deployer_rules.deployer_env) and may name
no other model's serving login or Secret.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s

from ml_platform.deployer_rules import MODEL_ENV, TEAM_ENV
from ml_platform.pod_rules import set_task_argument, task_argument
from ml_platform.serving_identity import looks_like_serving_name, serving_identity
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


def _pod_strings(pod: k8s.V1Pod) -> tuple[dict[str, str], list[str]]:
    """(env values of the pod's containers by name, every env value and argument): where a
    serving login or Secret can be handed to the deployer."""
    env: dict[str, str] = {}
    strings: list[str] = []
    for container in _as_list(pod.spec.containers) + _as_list(pod.spec.init_containers):
        for var in _as_list(container.env):
            if isinstance(var.value, str):
                env.setdefault(var.name, var.value)
                strings.append(var.value)
        strings += [a for a in _as_list(container.args) if isinstance(a, str)]
    return env, strings


def serving_violations(pod: k8s.V1Pod, config: PlatformConfig, where: str) -> list[Violation]:
    """MLP207 for a deploy step (the deployer account) naming a serving login or Secret that
    is not its model's (DEPLOYER_MODEL): another model's. Which team may deploy the model is
    the deployer's to decide at run time (the registered model's owner tag)."""
    if pod.spec.service_account_name != config.service_accounts["deployer"]:
        return []
    env, strings = _pod_strings(pod)
    model = env.get(MODEL_ENV)
    if model:
        login, secret = serving_identity(model)
        # A model name may itself look like a serving name; it is no other model's.
        own, whose = {model, login, secret}, f"model {model!r}'s are {login!r} and {secret!r}"
    else:
        own, whose = set(), f"it names no model in {MODEL_ENV}"
    others = sorted({s for s in strings if looks_like_serving_name(s) and s not in own})
    return [
        Violation(CODE, f"{where} names {name!r}, another model's serving identity ({whose})", FIX)
        for name in others
    ]


def _secret_owners(config: PlatformConfig) -> dict[str, str]:
    return {name: t.team for t in config.teams.values() for name in t.secrets}


def _in_training(namespace: str | None, config: PlatformConfig) -> bool:
    # As pod_mutation_hook places it: no namespace, default and airflow mean training.
    return namespace in (None, "", "default", config.namespaces["airflow"]) or (
        namespace == config.namespaces["training"]
    )


def _no_identity(team: str, config: PlatformConfig, where: str) -> Violation:
    known = ", ".join(sorted(config.teams))
    return Violation(
        CODE,
        f"{where}: team {team!r} has no identities on stack {config.environment!r} "
        f"(teams there: {known})",
        f"the platform team adds {team!r} to ml-platform:teams in "
        f"infra/Pulumi.{config.environment}.yaml",
    )


def identity_violations(
    pod: k8s.V1Pod, config: PlatformConfig, where: str, team: str | None = None
) -> list[Violation]:
    """MLP207 for a training-namespace pod that uses another team's account or Secrets.

    With `team` (the DAG folder's: task_policy on the task's arguments, check-dags on its
    built pod), the pod must also run as that team's account (or an unset one, which the
    platform fills in) and the team must have identities on the stack. Without it
    (pod_mutation_hook, which sees only the pod), the pod acts for the team whose account it
    runs as, and references only that team's Secrets."""
    namespace = pod.metadata.namespace if pod.metadata else None
    if not config.teams or not pod.spec or not _in_training(namespace, config):
        return []
    found = []
    account = pod.spec.service_account_name
    if team is None:
        owner, subject = pod_owner(pod, config), f"{where} runs as {account!r} but"
    else:
        identity = config.team_identity(team)
        if identity is None:
            # The local runtime uses no identities; make check-dags still names each stack.
            return [] if runtime() == "local" else [_no_identity(team, config, where)]
        allowed = (
            *UNSET_ACCOUNTS,
            identity.service_account,
            config.service_accounts["training"],
            config.service_accounts["deployer"],  # MLP206 decides who may
        )
        if account not in allowed:
            other = config.team_owning_account(account)
            whose = f"team {other!r}'s account" if other else "not the team's account"
            found.append(
                Violation(CODE, f"{where} runs as service account {account!r} ({whose})", FIX)
            )
        owner, subject = team, where
    owners = _secret_owners(config)
    found += [
        Violation(CODE, f"{subject} references {name!r}, team {owners[name]!r}'s credentials", FIX)
        for name in sorted(pod_secret_names(pod))
        if owners.get(name, owner) != owner
    ]
    return found + serving_violations(pod, config, where)


def assign_team_identity(task: Any, config: PlatformConfig, team: str) -> TeamIdentity | None:
    """Give a pod task of `team` (training namespace) the team's account and Secrets: the
    team's service account unless it runs as the deployer, the MLflow login, and the storage
    key unless it is the deployer (which reads no data). Returns the identity given."""
    identity = config.team_identity(team)
    if identity is None or not _in_training(task_argument(task, "namespace"), config):
        return None
    deployer = task_argument(task, "service_account_name") == config.service_accounts["deployer"]
    if not deployer:
        set_task_argument(task, "service_account_name", identity.service_account)
    wanted = [identity.mlflow_secret] if deployer else list(identity.secrets)
    secrets = list(task_argument(task, "secrets") or [])
    have = {s.secret for s in secrets}
    added = [Secret("env", None, name) for name in wanted if name not in have]
    set_task_argument(task, "secrets", secrets + added)
    return identity
