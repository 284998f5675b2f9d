"""Run a container task's pod as a local process: same command, arguments and environment.

The pod spec is still built (the pod_mutation_hook included) and checked against the pool
catalog, so a pod that could not schedule on the cluster fails locally too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from ml_platform.pools import check_schedulable
from ml_platform.settings import PlatformConfig, platform_config

XCOM_ENV = "TRAINER_XCOM_PATH"  # where the platform images write their result


class ContainerTaskFailed(RuntimeError):
    """The local stand-in for a pod failed; the message carries its last output line."""


def local_entrypoint(image: str, config: PlatformConfig) -> list[str]:
    """The console script standing in for a platform image's ENTRYPOINT."""
    repository = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    by_repository = {name: key for key, name in config.images.names.items()}
    if repository not in by_repository:
        raise ContainerTaskFailed(f"image {image} is not a platform image: no local entrypoint")
    script = by_repository[repository]
    beside_python = Path(sys.executable).with_name(script)
    found = str(beside_python) if beside_python.exists() else shutil.which(script)
    if not found:
        raise ContainerTaskFailed(f"image {image}: command {script!r} is not installed locally")
    return [found]


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


def run_pod_locally(operator: Any, context: Any) -> Any:
    config = platform_config()
    pod = operator.build_pod_request_obj(context, dry_run=True)
    pool = check_schedulable(pod, config)
    container = next(c for c in pod.spec.containers if c.name == operator.base_container_name)
    command = (container.command or local_entrypoint(container.image, config)) + list(
        container.args or []
    )
    operator.log.info(
        "local runtime: pod %s would run on pool %r; running %s",
        pod.metadata.name,
        pool.name,
        " ".join(command),
    )
    with tempfile.TemporaryDirectory(prefix="xcom-") as xcom_dir:
        env = pod_environment(container)
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
