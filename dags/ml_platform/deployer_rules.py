"""Who may run as the deployer's service account: the platform's deploy step, for its own team.

The deployer account can replace what serves in the serving namespace. A task may use it
only with the platform's deployer image, its own entrypoint (no `cmds`), and DEPLOYER_TEAM
naming the team whose folder holds the DAG, which the deployer then holds to the registered
model's owner tag. Checked by task_policy when Airflow parses a DAG and by `make check-dags`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_platform.model_specs import team_of
from ml_platform.settings import PlatformConfig
from ml_platform.violations import Violation

TEAM_ENV = "DEPLOYER_TEAM"
# The label the deployer's NetworkPolicy selects to let a pod reach the Kubernetes API.
IMAGE_LABEL = "ml-platform/image"
FIX = "deploy through the platform's training DAG (training_dag), whose deploy step is the only use"


def dag_team(fileloc: str | None) -> str:
    """The team a DAG file belongs to, as the training DAG names it for its deploy step."""
    return team_of(Path(fileloc or ""))


def env_dict(env: Any) -> dict[str, str]:
    """env_vars as KubernetesPodOperator takes them (a dict or V1EnvVar list) as a dict."""
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    found = {}
    for item in env or []:
        name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
        value = item.get("value") if isinstance(item, dict) else getattr(item, "value", None)
        if name:
            found[name] = value
    return found


def deployer_label_violations(
    *,
    labels: dict[str, str],
    service_account: str | None,
    image: str | None,
    where: str,
    config: PlatformConfig,
) -> list[Violation]:
    """MLP206 for a pod labelled as the deployer (which opens the Kubernetes API to it) that
    is not the deployer: another image or another service account."""
    if labels.get(IMAGE_LABEL) != "deployer":
        return []
    account = config.service_accounts["deployer"]
    if service_account == account and image == config.images.ref("deployer"):
        return []
    message = (
        f"{where} carries {IMAGE_LABEL}=deployer, which lets it reach the Kubernetes API, but "
        f"runs image {image!r} as service account {service_account!r}"
    )
    return [Violation("MLP206", message, FIX)]


def deployer_account_violations(
    *,
    service_account: str | None,
    image: str | None,
    cmds: Any,
    env: dict[str, str],
    team: str,
    where: str,
    config: PlatformConfig,
) -> list[Violation]:
    """MLP206 for a task that runs as the deployer account but is not a team's deploy step."""
    if service_account != config.service_accounts["deployer"]:
        return []
    why = []
    if image != config.images.ref("deployer"):
        why.append(f"with image {image!r}, not the platform's deployer")
    if cmds:
        why.append("with its own cmds instead of the deployer's entrypoint")
    claimed = env.get(TEAM_ENV)
    if claimed != team:
        why.append(f"for team {claimed!r} ({TEAM_ENV}) in a DAG of team {team!r}")
    if not why:
        return []
    account = config.service_accounts["deployer"]
    message = f"{where} runs as the deployer account {account!r} " + "; ".join(why)
    return [Violation("MLP206", message, FIX)]
