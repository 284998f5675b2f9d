"""Namespace, service account, image and runtime settings come from the platform config.

Every container task (a textbook KubernetesPodOperator too, through pod_mutation_hook) runs in
the training namespace as a platform identity on a platform image; what only the factory adds
(image labels, platform env, the XCom sidecar) is checked on the factory's tasks.
"""

from __future__ import annotations

import pytest
from kubernetes.client import models as k8s

from ml_platform.container import compute_threads, container_task_kwargs
from ml_platform.model_specs import PLATFORM_TEAM
from ml_platform.settings import PlatformConfig

XCOM_SIDECAR = "airflow-xcom-sidecar"


@pytest.mark.usefixtures("container_task")
def test_namespace_and_service_account_are_the_configs(
    container_pod: k8s.V1Pod, platform: PlatformConfig
):
    assert container_pod.metadata.namespace == platform.namespaces["training"]
    teams = {identity.service_account for identity in platform.teams.values()}
    assert container_pod.spec.service_account_name in teams | {
        platform.service_accounts["deployer"]
    }


def test_pipeline_service_accounts(pipeline_pods: dict[str, k8s.V1Pod], platform: PlatformConfig):
    """Only deploy runs as the deployer (it may change serving); the rest as the platform's
    own team (the pipeline's DAG is at the top of dags/)."""
    accounts = {task_id: pod.spec.service_account_name for task_id, pod in pipeline_pods.items()}
    assert accounts.pop("deploy") == platform.service_accounts["deployer"]
    assert set(accounts.values()) == {platform.teams[PLATFORM_TEAM].service_account}


@pytest.mark.usefixtures("container_task")
def test_image_comes_from_the_platform_registry(container_pod: k8s.V1Pod, platform: PlatformConfig):
    assert container_pod.spec.containers[0].image.startswith(platform.images.registry + "/")


@pytest.mark.usefixtures("platform_container_task")
def test_image_is_a_platform_image(container_pod: k8s.V1Pod, platform: PlatformConfig):
    """The platform's own images, or a team's own (labelled with the team too)."""
    labels = container_pod.metadata.labels
    image, team = labels["ml-platform/image"], labels.get("ml-platform/team")
    base = container_pod.spec.containers[0]
    if team is None:
        assert base.image == platform.images.ref(image)
    else:
        assert image not in platform.images.names  # never taken for a platform image
        assert base.image == platform.images.team_ref(team, image)
    assert base.image.startswith(platform.images.registry + "/")
    assert base.image_pull_policy == platform.images.pull_policy


@pytest.mark.usefixtures("platform_container_task")
def test_platform_env(container_pod: k8s.V1Pod, platform: PlatformConfig):
    env = {var.name: var.value for var in container_pod.spec.containers[0].env}
    assert env["MLFLOW_TRACKING_URI"] == platform.mlflow_tracking_uri
    assert env["ML_PLATFORM_DATASETS_URI"] == platform.datasets_uri
    assert env["AIRFLOW_CTX_MAP_INDEX"] == "{{ ti.map_index }}"
    # Compute threads: the whole CPUs of the container's limit, not the node's core count.
    limit = container_pod.spec.containers[0].resources.limits["cpu"]
    assert env["OMP_NUM_THREADS"] == compute_threads(limit, cpu_limit=None)


@pytest.mark.parametrize(
    ("cpu", "cpu_limit", "threads"),
    [("500m", None, "1"), ("1500m", None, "1"), ("1", "4", "4"), ("2", "2500m", "2")],
)
def test_threads_follow_the_cpu_limit(cpu: str, cpu_limit: str | None, threads: str):
    kwargs = container_task_kwargs(image="trainer", cpu=cpu, cpu_limit=cpu_limit)
    assert kwargs["env_vars"]["OMP_NUM_THREADS"] == threads


@pytest.mark.usefixtures("container_task")
def test_main_container_runs_unprivileged(container_pod: k8s.V1Pod):
    security = container_pod.spec.containers[0].security_context
    assert security.run_as_non_root is True
    assert security.allow_privilege_escalation is False
    assert security.capabilities.drop == ["ALL"]


@pytest.mark.usefixtures("platform_container_task")
def test_xcom_sidecar_is_present(container_pod: k8s.V1Pod):
    """Results come back through the sidecar: select_best and the branch read them."""
    names = [container.name for container in container_pod.spec.containers]
    assert names[0] == "base" and XCOM_SIDECAR in names
