"""Container tasks the platform way: one call gives a KubernetesPodOperator ready for a pool.

DAG authors say which platform image, which arguments, how much CPU/memory and how many GPUs;
the factory adds namespace, service account, image reference, resources, tolerations and node
affinity from the pool catalog, MLflow and storage settings, secrets by reference, and the
Airflow context the images use to make retries idempotent.

A team's own image (dags/teams/<team>/images/<name>/, built FROM the trainer by `make images`)
is a platform image too: `image="<name>", team="<team>"` runs it from the platform registry.
"""

from __future__ import annotations

import math
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s
from kubernetes.utils import parse_quantity

from ml_platform.pod_security import (
    container_security_context,
    pod_security_context,
    xcom_sidecar_security_context,
)
from ml_platform.pools import affinity_for, select_pool, tolerations_for
from ml_platform.settings import (
    GPU_RESOURCE,
    IMAGE_LABEL,
    PlatformConfig,
    PlatformConfigError,
    platform_config,
    runtime,
)

# The one writable path of a platform image besides the XCom folder; disk-backed, bounded.
SCRATCH_PATH = "/tmp"
SCRATCH_SIZE = "20Gi"
# Rendered per task instance: the images tag their MLflow runs with these to detect retries.
AIRFLOW_CONTEXT_ENV = {
    "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
    "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
    "AIRFLOW_CTX_TASK_ID": "{{ task.task_id }}",
    "AIRFLOW_CTX_MAP_INDEX": "{{ ti.map_index }}",
    "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
}
TEAM_LABEL = "ml-platform/team"
THREADS_ENV = "OMP_NUM_THREADS"


class PlatformPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that runs as a local process when ML_PLATFORM_RUNTIME=local."""

    def execute(self, context: Any) -> Any:
        if runtime() == "local":
            from ml_platform.local.runner import run_pod_locally

            return run_pod_locally(self, context)
        return super().execute(context)


def platform_env(config: PlatformConfig) -> dict[str, str]:
    """Environment every platform container gets: where MLflow and storage are."""
    env = {
        "MLFLOW_TRACKING_URI": config.mlflow_tracking_uri,
        "ML_PLATFORM_ENVIRONMENT": config.environment,
        "ML_PLATFORM_DATASETS_URI": config.datasets_uri,
    }
    endpoint = config.storage.get("endpoint_url")
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
        env["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    return env


def compute_threads(cpu: str, cpu_limit: str | None) -> str:
    """Threads for the container's numeric libraries (OpenMP, and PyTorch through it): the
    whole CPUs of its limit, at least one. They would otherwise start one per core of the
    node, whatever the limit: oversubscribed and throttled under a CPU quota, and on the local
    platform two trials at once would fight over the same cores."""
    return str(max(1, math.floor(float(parse_quantity(cpu_limit or cpu)))))


def resources(
    cpu: str, memory: str, gpus: int, cpu_limit: str | None, memory_limit: str | None
) -> k8s.V1ResourceRequirements:
    limits = {"cpu": cpu_limit or cpu, "memory": memory_limit or memory}
    if gpus:
        # Extended resources are set as limits; Kubernetes copies them into requests.
        limits[GPU_RESOURCE] = str(gpus)
    return k8s.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory}, limits=limits)


def image_reference(config: PlatformConfig, image: str, team: str | None = None) -> str:
    """A platform image's reference, or with `team` that team's own image of that name."""
    if image in config.images.names:
        return config.images.ref(image)
    if team is None:
        known = ", ".join(sorted(config.images.names))
        raise PlatformConfigError(
            f"unknown platform image {image!r} (known: {known}); a team's own image "
            f"(dags/teams/<team>/images/{image}/) needs team='<team>'"
        )
    return config.images.team_ref(team, image)


def image_labels(config: PlatformConfig, image: str, team: str | None) -> dict[str, str]:
    """Which image a pod runs, and for a team's own image whose it is. A team image never
    bears a platform image's name (those resolve first), so it cannot pass for the deployer
    that network policies select by this label."""
    if image in config.images.names:
        return {IMAGE_LABEL: image}
    assert team is not None  # image_reference refused it otherwise
    return {IMAGE_LABEL: image, TEAM_LABEL: team}


def _scratch() -> tuple[k8s.V1Volume, k8s.V1VolumeMount]:
    empty_dir = k8s.V1EmptyDirVolumeSource(size_limit=SCRATCH_SIZE)
    return k8s.V1Volume(name="tmp", empty_dir=empty_dir), k8s.V1VolumeMount(
        name="tmp", mount_path=SCRATCH_PATH
    )


def container_task_kwargs(
    *,
    image: str,
    team: str | None = None,
    gpus: int = 0,
    gpu_type: str | None = None,
    cpu: str = "500m",
    memory: str = "1Gi",
    cpu_limit: str | None = None,
    memory_limit: str | None = None,
    env: dict[str, str] | None = None,
    secrets: list[str] | None = None,
    service_account: str = "training",
    config: PlatformConfig | None = None,
    **kpo_kwargs: Any,
) -> dict[str, Any]:
    """KubernetesPodOperator arguments for a platform image on the pool that fits the request.

    `image` is a platform image (trainer, deployer) or, with `team`, one of that team's own.
    """
    config = config or platform_config()
    reference = image_reference(config, image, team)
    pool = select_pool(config, gpus=gpus, gpu_type=gpu_type)
    secret_refs = [Secret("env", None, name) for name in secrets or []]
    scratch_volume, scratch_mount = _scratch()
    # The team's service account and credentials Secrets come from task_policy, which knows
    # the DAG's team (ml_platform.team_identities).
    kwargs: dict[str, Any] = {
        "image": reference,
        "image_pull_policy": config.images.pull_policy,
        "namespace": config.namespaces["training"],
        "service_account_name": config.service_accounts[service_account],
        "container_resources": resources(cpu, memory, gpus, cpu_limit, memory_limit),
        "tolerations": tolerations_for(pool),
        "affinity": affinity_for(pool),
        "env_vars": {
            **platform_env(config),
            **AIRFLOW_CONTEXT_ENV,
            THREADS_ENV: compute_threads(cpu, cpu_limit),
            **(env or {}),
        },
        "secrets": secret_refs,
        "labels": {**image_labels(config, image, team), "ml-platform/pool": pool.name},
        # PodSecurity `restricted` (ml_platform.pod_security), the XCom sidecar included;
        # pod_mutation_hook adds the sidecar's limits, which have no operator argument.
        "security_context": pod_security_context(),
        # Read-only root: the platform images write only to /tmp (their HOME and TMPDIR, an
        # emptyDir below) and /airflow/xcom (the operator's own emptyDir).
        "container_security_context": container_security_context(read_only_root=True),
        "volumes": [scratch_volume, *(kpo_kwargs.pop("volumes", None) or [])],
        "volume_mounts": [scratch_mount, *(kpo_kwargs.pop("volume_mounts", None) or [])],
        "xcom_sidecar_container_security_context": xcom_sidecar_security_context(),
        "deferrable": True,
        "on_finish_action": "delete_pod",
        "get_logs": True,
        "log_events_on_failure": True,
        "do_xcom_push": True,
        "startup_timeout_seconds": 900,  # a GPU node may have to scale up first
    }
    kwargs.update(kpo_kwargs)
    return kwargs


def container_task(task_id: str, *, image: str, **kwargs: Any) -> PlatformPodOperator:
    """One container task; see container_task_kwargs for the knobs."""
    return PlatformPodOperator(task_id=task_id, **container_task_kwargs(image=image, **kwargs))


def mapped_container_task(
    task_id: str, *, image: str, arguments: Any, max_parallel: int | None = None, **kwargs: Any
) -> Any:
    """One container task per item of `arguments` (an XComArg of argument lists)."""
    partial_kwargs = container_task_kwargs(image=image, **kwargs)
    if max_parallel:
        partial_kwargs["max_active_tis_per_dagrun"] = max_parallel
    return PlatformPodOperator.partial(task_id=task_id, **partial_kwargs).expand(
        arguments=arguments
    )
