"""Who may run as the deployer's service account: the platform's deploy step, for its own team.

The deployer account can replace what serves in the serving namespace. A task may use it
only with the platform's deployer image, its own entrypoint (no `cmds`), and DEPLOYER_TEAM
naming the team whose folder holds the DAG, which the deployer then holds to the registered
model's owner tag, and the pod wears `ml-platform/image=deployer`. Checked by task_policy when
Airflow parses a DAG and by `make check-dags`; the API server holds the image, entrypoint and
label rules too (infra/ml_infra/admission_policies.py).
"""

from __future__ import annotations

from pathlib import Path

from kubernetes.client import models as k8s

from ml_platform.model_specs import team_of
from ml_platform.serving_identity import serving_identity
from ml_platform.settings import IMAGE_LABEL, PlatformConfig, runtime
from ml_platform.violations import Violation

TEAM_ENV = "DEPLOYER_TEAM"
# The model a deploy step deploys: its serving login is that model's, READ on it alone.
MODEL_ENV = "DEPLOYER_MODEL"
# The MLflow login of the model's servers, which the deployer grants READ on the model, and
# the Secret (serving namespace) carrying it into them.
SERVING_USER_ENV = "DEPLOYER_SERVING_USER"
SERVING_SECRET_ENV = "DEPLOYER_ENV_SECRET"
FIX = "deploy through the platform's training DAG (training_dag), whose deploy step is the only use"


def dag_team(fileloc: str | None) -> str:
    """The team a DAG file belongs to, as the training DAG names it for its deploy step."""
    return team_of(Path(fileloc or ""))


def _env(container: k8s.V1Container | None) -> dict[str, str]:
    return {e.name: e.value for e in (container.env or []) if e.name} if container else {}


def deployer_label_violations(
    pod: k8s.V1Pod, *, base_container: str, where: str, config: PlatformConfig
) -> list[Violation]:
    """MLP206 for a pod labelled as the deployer (which opens the Kubernetes API to it) that
    is not the deployer: another image or another service account."""
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    if labels.get(IMAGE_LABEL) != "deployer":
        return []
    base = _container(pod, base_container)
    image, account = (base.image if base else None), pod.spec.service_account_name
    if account == config.service_accounts["deployer"] and image == config.images.ref("deployer"):
        return []
    message = (
        f"{where} carries {IMAGE_LABEL}=deployer, which lets it reach the Kubernetes API, but "
        f"runs image {image!r} as service account {account!r}"
    )
    return [Violation("MLP206", message, FIX)]


def deployer_violations(
    pod: k8s.V1Pod, *, base_container: str, team: str, where: str, config: PlatformConfig
) -> list[Violation]:
    """MLP206 for a pod that runs as the deployer account but is not `team`'s deploy step, or
    wears the deployer's label without being the deployer."""
    found = deployer_label_violations(
        pod, base_container=base_container, where=where, config=config
    )
    account = config.service_accounts["deployer"]
    if pod.spec.service_account_name != account:
        return found
    base = _container(pod, base_container)
    image = base.image if base else None
    why = []
    if image != config.images.ref("deployer"):
        why.append(f"with image {image!r}, not the platform's deployer")
    if base and base.command:
        why.append("with its own cmds instead of the deployer's entrypoint")
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    if labels.get(IMAGE_LABEL) != "deployer":
        # The API server refuses it too (infra's admission policies): the label is what gives
        # the pod its token mount and its way to the Kubernetes API.
        why.append(f"without the label {IMAGE_LABEL}=deployer")
    claimed = _env(base).get(TEAM_ENV)
    if claimed != team:
        why.append(f"for team {claimed!r} ({TEAM_ENV}) in a DAG of team {team!r}")
    if why:
        message = f"{where} runs as the deployer account {account!r} " + "; ".join(why)
        found.append(Violation("MLP206", message, FIX))
    return found


def _container(pod: k8s.V1Pod, name: str) -> k8s.V1Container | None:
    return next((c for c in pod.spec.containers or [] if c.name == name), None)


def deployer_env(config: PlatformConfig, team: str, model: str) -> dict[str, str]:
    """What a team's deployer step (deploy, or the drift monitor's rollback) of `model` is
    told: the team it acts for, the model, where model servers run, and the model's serving
    login, which it grants READ on the model."""
    env = {
        # The deployer refuses a registered model another team owns (its ml-platform.team tag).
        TEAM_ENV: team,
        MODEL_ENV: model,
        "DEPLOYER_NAMESPACE": config.namespaces["serving"],
        "DEPLOYER_IMAGE": config.images.ref("deployer"),
        "DEPLOYER_SERVICE_ACCOUNT": config.service_accounts["serving"],
    }
    # The model server loads the model from MLflow, which has auth on in clusters, with the
    # model's own read-only login: `pulumi up` creates one for every model spec, named from
    # the model name as here. The local runtime's MLflow has no auth: nothing to grant there.
    if config.teams and runtime() == "kubernetes":
        env[SERVING_USER_ENV], env[SERVING_SECRET_ENV] = serving_identity(model)
    return env
