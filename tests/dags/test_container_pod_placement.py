"""Each container task's pod lands on the right pool: GPU tasks on a GPU pool, the rest on CPU.

The pods are the ones KubernetesPodOperator builds (dry run, XCom sidecar included), for every
container task of every DAG; mapped tasks are unmapped the way the worker does it (conftest).
"""

from __future__ import annotations

import copy

import pytest
from kubernetes.client import models as k8s

from ml_platform.pools import (
    POOL_LABEL,
    check_schedulable,
    gpu_request,
    select_pool,
    tolerations_for,
    unschedulable_reason,
)
from ml_platform.settings import GPU_RESOURCE, PlatformConfig, Pool

EXPECTED_GPUS = {  # the pipeline's container tasks and the GPUs each asks for
    "data_preparation.validate": 0,
    "data_preparation.preprocess": 0,
    "train": 1,
    "evaluate": 0,
    "deploy": 0,
}


def _required_terms(pod: k8s.V1Pod) -> list[k8s.V1NodeSelectorTerm]:
    node_affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = (
        node_affinity.required_during_scheduling_ignored_during_execution if node_affinity else None
    )
    return list(required.node_selector_terms or []) if required else []


def _requires_pool_labels(pod: k8s.V1Pod, pool: Pool) -> bool:
    """Every required term pins every label of `pool` with an `In` expression."""
    terms = _required_terms(pod)
    wanted = {(key, "In", (value,)) for key, value in pool.labels.items()}
    return bool(terms) and all(
        wanted <= {(e.key, e.operator, tuple(e.values or ())) for e in term.match_expressions}
        for term in terms
    )


def _gpu_pools(config: PlatformConfig) -> list[Pool]:
    pools = [pool for pool in config.pools if pool.has_gpus]
    assert pools, f"environment {config.environment!r} has no GPU pool to test against"
    return pools


def test_pipeline_gpu_and_cpu_tasks(pipeline_pods: dict[str, k8s.V1Pod]):
    assert {task_id: gpu_request(pod) for task_id, pod in pipeline_pods.items()} == EXPECTED_GPUS


@pytest.mark.usefixtures("container_task")
def test_pod_fits_a_pool(container_pod: k8s.V1Pod, platform: PlatformConfig):
    pool = check_schedulable(container_pod, platform)
    assert container_pod.metadata.labels[POOL_LABEL] == pool.name


@pytest.mark.usefixtures("gpu_container_task")
def test_gpu_pod_is_placed_on_a_gpu_pool(container_pod: k8s.V1Pod, platform: PlatformConfig):
    gpus = gpu_request(container_pod)
    base = container_pod.spec.containers[0]
    assert base.resources.limits[GPU_RESOURCE] == str(gpus)
    pool = check_schedulable(container_pod, platform)
    assert pool.has_gpus and pool.gpus_per_node >= gpus
    assert pool.taints, f"GPU pool {pool.name} is not tainted: nothing keeps CPU pods off it"
    for toleration in tolerations_for(pool):
        assert toleration in container_pod.spec.tolerations
    assert _requires_pool_labels(container_pod, pool)


@pytest.mark.usefixtures("container_task")
def test_only_the_main_container_asks_for_gpus(container_pod: k8s.V1Pod):
    for sidecar in container_pod.spec.containers[1:]:
        resources = sidecar.resources or k8s.V1ResourceRequirements()
        assert GPU_RESOURCE not in {**(resources.limits or {}), **(resources.requests or {})}


@pytest.mark.usefixtures("cpu_container_task")
def test_cpu_pod_stays_off_gpu_pools(container_pod: k8s.V1Pod, platform: PlatformConfig):
    for container in container_pod.spec.containers:
        resources = container.resources or k8s.V1ResourceRequirements()
        assert GPU_RESOURCE not in {**(resources.limits or {}), **(resources.requests or {})}
    gpu_taint_keys = {taint.key for pool in _gpu_pools(platform) for taint in pool.taints}
    for toleration in container_pod.spec.tolerations or []:
        assert toleration.key and toleration.key not in gpu_taint_keys, toleration

    cpu_pool = select_pool(platform, gpus=0)
    assert unschedulable_reason(container_pod, cpu_pool) is None
    assert _requires_pool_labels(container_pod, cpu_pool)
    for gpu_pool in _gpu_pools(platform):
        assert unschedulable_reason(container_pod, gpu_pool) is not None
        # Node affinity alone keeps it off, even if someone adds the GPU toleration later.
        tolerating = copy.deepcopy(container_pod)
        tolerating.spec.tolerations = tolerations_for(gpu_pool)
        assert unschedulable_reason(tolerating, gpu_pool) is not None
