"""Run a container task's pod as a local process: same command, arguments and environment.

The pod spec is still built (the pod_mutation_hook included) and checked against the pool
catalog, so a pod that could not schedule on the cluster fails locally too.

A platform image stands in as its console script in this virtualenv (`trainer`, `deployer`).
A team image (dags/teams/<team>/images/<name>/) is built FROM the trainer image and runs
`python -m <module>` on the module files of its folder: locally the same module runs with
this Python, the folder first on PYTHONPATH, so the team's code sees the trainer's packages
as it does in the image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ml_platform.model_specs import DAGS_FOLDER, TeamImage, team_images
from ml_platform.pools import NoPoolError, check_schedulable
from ml_platform.settings import TEAM_IMAGE_PREFIX, PlatformConfig, platform_config

XCOM_ENV = "TRAINER_XCOM_PATH"  # where the platform images write their result
# Set by the local platform (`make up`): where each task instance's built pod is kept, so its
# tests can check what a cluster would have scheduled (no nodes here to look at).
POD_RECORD_ENV = "ML_PLATFORM_LOCAL_POD_RECORDS"


class ContainerTaskFailed(RuntimeError):
    """The local stand-in for a pod failed; the message carries its last output line."""


class NoLocalImage(ContainerTaskFailed, AirflowFailException):
    """The image has no local stand-in: a retry cannot find one, so the task fails at once."""


class Unschedulable(ContainerTaskFailed, AirflowFailException):
    """No pool of the stack takes the pod: a retry builds the same pod, so it fails at once."""


@dataclass(frozen=True)
class LocalEntrypoint:
    """What stands in for an image's ENTRYPOINT: a command, and folders to import from."""

    command: list[str]
    pythonpath: list[str] = field(default_factory=list)

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        if not self.pythonpath:
            return env
        path = os.pathsep.join(filter(None, [*self.pythonpath, env.get("PYTHONPATH")]))
        return {**env, "PYTHONPATH": path}


def dags_folder() -> Path:
    """The DAGs folder this runtime parses (team images live under its teams/)."""
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or DAGS_FOLDER)


def local_entrypoint(
    image: str, config: PlatformConfig, dags: Path | None = None
) -> LocalEntrypoint:
    """The local stand-in for a platform image's or a team image's ENTRYPOINT."""
    repository = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    by_repository = {name: key for key, name in config.images.names.items()}
    if repository in by_repository:
        script = by_repository[repository]
        beside_python = Path(sys.executable).with_name(script)
        found = str(beside_python) if beside_python.exists() else shutil.which(script)
        if not found:
            raise NoLocalImage(f"image {image}: command {script!r} is not installed locally")
        return LocalEntrypoint([found])
    if repository.startswith(TEAM_IMAGE_PREFIX):
        return team_entrypoint(image, config, dags or dags_folder())
    raise NoLocalImage(
        f"image {image} is not a platform image ({', '.join(sorted(by_repository))}) nor a "
        "team image: it has no local entrypoint"
    )


def team_entrypoint(image: str, config: PlatformConfig, dags: Path) -> LocalEntrypoint:
    """`python -m <module>` of the team image's Dockerfile, with its folder importable."""
    found = [t for t in team_images(dags) if config.images.team_ref(t.team, t.name) == image]
    if not found:
        raise NoLocalImage(
            f"image {image}: no team image folder for it under {dags}/teams/ "
            "(expected teams/<team>/images/<name>/Dockerfile)"
        )
    team_image = found[0]
    module = python_module_entrypoint(team_image)
    return LocalEntrypoint([sys.executable, "-m", module], pythonpath=[str(team_image.folder)])


def python_module_entrypoint(image: TeamImage) -> str:
    """The module of the image's `ENTRYPOINT ["python", "-m", MODULE]`, as check-dags reads it.

    The image is held to the same rule as in `make check-dags` (MLP404): what would not build
    or run on the cluster does not run locally either, with the same one-line reason.
    """
    from ml_platform.checks.spec_rules import dockerfile_findings, dockerfile_instructions

    problems = dockerfile_findings(image.dockerfile)
    if problems:
        first = problems[0]
        raise ContainerTaskFailed(f"{image.dockerfile}:{first.line}: {first.message}")
    entrypoint = [
        i for i in dockerfile_instructions(image.dockerfile.read_text()) if i.name == "ENTRYPOINT"
    ]
    return json.loads(entrypoint[-1].args)[2]


def pod_environment(container: Any) -> dict[str, str]:
    """This process's environment plus the container's literal env vars.

    Secret references (valueFrom / envFrom) have no local store to read from; locally the
    credentials come from the environment the runtime was started with.
    """
    env = dict(os.environ)
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
    return env


def run_every_pod_locally() -> None:
    """Plain KubernetesPodOperators run as local processes too, as PlatformPodOperator's do:
    the local runtime has no cluster, and trying one would only wait out the retries."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    if getattr(KubernetesPodOperator.execute, "runs_locally", False):
        return

    def execute(self: KubernetesPodOperator, context: Any) -> Any:
        return run_pod_locally(self, context)

    execute.runs_locally = True  # type: ignore[attr-defined]
    KubernetesPodOperator.execute = execute  # type: ignore[method-assign]


def record_pod(pod: Any, pool: str, context: Any) -> Path | None:
    """Keep the checked pod spec and its pool as <records>/<dag>/<run>/<task>[.<map>].json
    when POD_RECORD_ENV is set; the file of a later try replaces the earlier one's."""
    records = os.environ.get(POD_RECORD_ENV)
    ti = context.get("ti") if records else None
    if ti is None:
        return None
    from kubernetes.client import ApiClient

    from ml_platform.pools import gpu_request

    map_index = getattr(ti, "map_index", -1)
    name = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}.{map_index}"
    path = Path(records) / ti.dag_id / ti.run_id / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": map_index,
        "try_number": getattr(ti, "try_number", None),
        "pool": pool,
        "gpus": gpu_request(pod),
        "pod": ApiClient().sanitize_for_serialization(pod),
    }
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def run_pod_locally(operator: Any, context: Any) -> Any:
    from ml_platform.policies import pod_mutation_hook

    config = platform_config()
    try:
        pod = operator.build_pod_request_obj(context, dry_run=True)
        # As the cluster does at creation. The operator module may have bound Airflow's
        # no-op hook before the local settings existed (a first run); the hook is idempotent.
        pod_mutation_hook(pod)
        pool = check_schedulable(pod, config)
    except NoPoolError as exc:
        raise Unschedulable(str(exc)) from None
    record_pod(pod, pool.name, context)
    container = next(c for c in pod.spec.containers if c.name == operator.base_container_name)
    entrypoint = (
        LocalEntrypoint(list(container.command))
        if container.command
        else local_entrypoint(container.image, config)
    )
    command = entrypoint.command + list(container.args or [])
    operator.log.info(
        "local runtime: pod %s would run on pool %r; running %s",
        pod.metadata.name,
        pool.name,
        " ".join(command),
    )
    with tempfile.TemporaryDirectory(prefix="xcom-") as xcom_dir:
        env = entrypoint.environment(pod_environment(container))
        xcom_path = Path(xcom_dir) / "return.json"
        env[XCOM_ENV] = str(xcom_path)
        last_lines: deque[str] = deque(maxlen=20)
        with subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                last_lines.append(line)
                operator.log.info("[%s] %s", container.name, line)
            returncode = process.wait()
        if returncode != 0:
            reason = next((line for line in reversed(last_lines) if line.strip()), "no output")
            raise ContainerTaskFailed(f"container exited with {returncode}: {reason}")
        if not operator.do_xcom_push:
            return None
        if not xcom_path.exists():
            raise ContainerTaskFailed(f"container wrote no XCom result to {XCOM_ENV}")
        return json.loads(xcom_path.read_text())
