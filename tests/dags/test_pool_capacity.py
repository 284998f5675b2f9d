"""unschedulable_reason compares a pod's CPU and memory with a node's allocatable.

A request that is not set defaults to the limit, as in Kubernetes, so a limit-only pod
(the way many KubernetesPodOperators are written) is measured by its limits.
"""

from __future__ import annotations

import re

import pytest
from kubernetes.client import models as k8s

from ml_platform.container import container_task
from ml_platform.pools import (
    NoPoolError,
    check_schedulable,
    pods_per_node,
    select_pool,
    unschedulable_reason,
)
from ml_platform.settings import PlatformConfig

# Node sizes below are the kind stack's: 4 CPUs and 8Gi per node.
pytestmark = pytest.mark.usefixtures("kind_stack")


def _pod(**resources: dict[str, str]) -> k8s.V1Pod:
    container = k8s.V1Container(
        name="base", image="busybox", resources=k8s.V1ResourceRequirements(**resources)
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="sized"), spec=k8s.V1PodSpec(containers=[container])
    )


def test_within_a_node(platform: PlatformConfig):
    pod = _pod(requests={"cpu": "3500m", "memory": "6Gi"})
    assert unschedulable_reason(pod, select_pool(platform)) is None


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        ({"requests": {"cpu": "8"}}, r"requests cpu 8 over a node's allocatable 4$"),
        ({"requests": {"memory": "16Gi"}}, r"requests memory \S+ over a node's allocatable 8Gi$"),
        ({"limits": {"cpu": "8"}}, r"requests cpu 8 over a node's allocatable 4$"),
        ({"limits": {"memory": "32Gi"}}, r"requests memory \S+ over a node's allocatable 8Gi$"),
    ],
    ids=["cpu request", "memory request", "cpu limit only", "memory limit only"],
)
def test_over_a_node(resources: dict, reason: str, platform: PlatformConfig):
    assert re.search(reason, unschedulable_reason(_pod(**resources), select_pool(platform)) or "")


def test_factory_task_too_big_for_every_node_is_caught(platform: PlatformConfig):
    """The factory picks the pool by GPUs only; the contract check catches the size and
    names only that pool, with its nodes' allocatable and the pod's request (XCom included)."""
    too_big = container_task("too_big", image="trainer", memory="16Gi")
    pod = too_big.build_pod_request_obj(dry_run=True)
    with pytest.raises(NoPoolError) as raised:
        check_schedulable(pod, platform)
    cpu_pool = select_pool(platform)
    others = [p.name for p in platform.pools if p != cpu_pool]
    message = str(raised.value)
    assert "too big for every node of the pool it is placed on" in message
    assert f"({cpu_pool.name}: requests memory 16394Mi over a node's allocatable " in message
    assert cpu_pool.node_allocatable["memory"] in message
    assert not any(f"{name}: " in message for name in others), message
    assert raised.value.fix and "allocatable" in raised.value.fix


def test_a_gpu_pod_too_big_for_the_gpu_nodes_names_the_gpu_pool(platform: PlatformConfig):
    gpu_pool = select_pool(platform, gpus=1)
    too_big = container_task("too_big", image="trainer", gpus=1, cpu="6")
    pod = too_big.build_pod_request_obj(dry_run=True)
    with pytest.raises(NoPoolError) as raised:
        check_schedulable(pod, platform)
    cpu = gpu_pool.node_allocatable["cpu"]
    assert f"({gpu_pool.name}: requests cpu 6001m over a node's allocatable {cpu})" in str(
        raised.value
    )


def test_pods_per_node_bin_packs_gpus_cpu_and_memory(platform: PlatformConfig):
    gpu_pool = select_pool(platform, gpus=1)
    sidecar = k8s.V1Container(
        name="airflow-xcom-sidecar",
        image="alpine",
        resources=k8s.V1ResourceRequirements(requests={"cpu": "1m", "memory": "10Mi"}),
    )

    def train_pod(cpu: str, memory: str) -> k8s.V1Pod:
        task = container_task("train", image="trainer", arguments=["train"], gpus=1)
        check_pod = task.build_pod_request_obj(dry_run=True)
        base = check_pod.spec.containers[0]
        base.resources.requests.update({"cpu": cpu, "memory": memory})
        base.resources.limits.update({"cpu": cpu, "memory": memory})
        check_pod.spec.containers.append(sidecar)
        return check_pod

    # 2 CPU + the sidecar's 1m on a 4-CPU node: the second trial waits for CPU, not a GPU.
    assert pods_per_node(train_pod("2", "4Gi"), gpu_pool) == 1
    assert pods_per_node(train_pod("1500m", "3Gi"), gpu_pool) == gpu_pool.gpus_per_node == 2
    # A CPU pool never holds a GPU pod, whatever its size.
    assert pods_per_node(train_pod("100m", "1Gi"), select_pool(platform)) == 0
