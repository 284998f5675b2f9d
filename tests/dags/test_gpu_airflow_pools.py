"""GPU tasks take their GPUs from an Airflow pool (ml_platform.airflow_pools): task_policy puts
every pod task that asks for GPUs, the factory's and a textbook operator's, in the Airflow pool
of the GPU node pool it lands on, a slot per GPU; CPU tasks stay in the default pool."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes.client import models as k8s

from ml_platform.airflow_pools import DEFAULT_POOL, assign_gpu_pool, gpu_pool_slots
from ml_platform.container import container_task
from ml_platform.policies import schedule_gpu_pod
from ml_platform.pools import GPU_TYPE_LABEL, gpu_request, select_pool
from ml_platform.settings import (
    DEFAULT_CONFIG_FILE,
    PlatformConfig,
    PlatformConfigError,
    parse_config,
)
from tests.dags.conftest import _dag, build_offline_pod, container_tasks

PROD_LIKE_POOLS = {
    "gpu-one-gpus": {"slots": 8, "description": "one-GPU nodes", "include_deferred": True},
    "gpu-four-gpus": {"slots": 8, "description": "four-GPU nodes", "include_deferred": True},
}


def _kind_document() -> dict:
    return json.loads(DEFAULT_CONFIG_FILE.read_text())


def _two_gpu_pools() -> PlatformConfig:
    """kind's document with a second, four-GPU node pool beside the two-GPU one."""
    doc = _kind_document()
    gpu = doc["pools"][1]
    four = copy.deepcopy(gpu)
    four.update(name="gpu-four", airflow_pool="gpu-four-gpus", labels={"ml-platform/pool": "x4"})
    four["gpu"]["count"] = 4
    gpu["airflow_pool"] = "gpu-one-gpus"
    doc["pools"].append(four)
    doc["airflow_pools"] = PROD_LIKE_POOLS
    return parse_config(doc)


def _textbook_gpu_pod(node_selector: dict[str, str] | None = None) -> k8s.V1Pod:
    """One GPU as a limit and nothing about where to run, as the provider docs write it."""
    container = k8s.V1Container(
        name="base",
        image="trainer",
        resources=k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}),
    )
    spec = k8s.V1PodSpec(containers=[container], node_selector=node_selector)
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p"), spec=spec)


@pytest.mark.parametrize(("dag_id", "task_id"), container_tasks())
def test_every_pod_task_is_in_the_pool_of_its_gpus(
    dag_id: str, task_id: str, platform: PlatformConfig
):
    task = _dag(dag_id).get_task(task_id)
    pod = build_offline_pod(dag_id, task_id)
    gpus = gpu_request(pod)
    if not gpus:
        assert task.pool == DEFAULT_POOL
        return
    schedule_gpu_pod(pod, platform)
    pool, slots = gpu_pool_slots(pod, platform)
    assert (task.pool, task.pool_slots) == (pool, gpus) == (pool, slots)
    assert pool in platform.airflow_pools


def test_the_training_sweep_waits_for_kinds_two_gpus(platform: PlatformConfig):
    train = _dag("ml_training_pipeline").get_task("train")
    assert (train.pool, train.pool_slots) == ("gpu-gpus", 1)
    assert platform.airflow_pools["gpu-gpus"]["slots"] == 2


def test_a_task_takes_a_slot_per_gpu_of_the_pool_it_lands_on():
    config = _two_gpu_pools()
    task = container_task("fit", image="trainer", gpus=4, config=config)
    pod = task.build_pod_request_obj(dry_run=True)
    assert assign_gpu_pool(task, pod, config) == ("gpu-four-gpus", 4)
    assert (task.pool, task.pool_slots) == ("gpu-four-gpus", 4)
    one = container_task("fit_one", image="trainer", gpus=1, config=config)
    # A one-GPU pod fits both node pools: the smallest node's pool, as select_pool picks.
    assert assign_gpu_pool(one, one.build_pod_request_obj(dry_run=True), config) == (
        "gpu-one-gpus",
        1,
    )


def test_a_cpu_task_keeps_its_pool():
    config = parse_config(_kind_document())
    task = container_task("prep", image="trainer", pool="etl", config=config)
    assert assign_gpu_pool(task, task.build_pod_request_obj(dry_run=True), config) is None
    assert task.pool == "etl"


def test_a_textbook_gpu_pod_is_pooled_once_placed():
    config = parse_config(_kind_document())
    pod = _textbook_gpu_pod()
    assert gpu_pool_slots(pod, config) is None  # no toleration yet: no pool takes it
    schedule_gpu_pod(pod, config)
    assert gpu_pool_slots(pod, config) == ("gpu-gpus", 1)


def _real_type_beside_its_stand_in() -> PlatformConfig:
    """kind's document with a real, larger pool of the type kind's emulated GPUs stand in for."""
    doc = _kind_document()
    gpu = doc["pools"][1]
    (real_type,) = gpu["gpu"]["stands_in_for"]
    real = copy.deepcopy(gpu)
    real.update(name="l4x4", airflow_pool="l4-gpus")
    real["labels"].update({"ml-platform/pool": "l4x4", GPU_TYPE_LABEL: real_type})
    real["gpu"] = {"type": real_type, "count": 4}
    doc["pools"].append(real)
    doc["airflow_pools"]["l4-gpus"] = {"slots": 4, "description": "", "include_deferred": True}
    return parse_config(doc)


def test_a_pod_pinned_to_a_type_takes_the_real_pools_slots_as_select_pool_would():
    """The emulated pool is smaller, but the real type comes before a stand-in for it: the
    hook, the Airflow pool and select_pool (the factory) all choose the real pool."""
    config = _real_type_beside_its_stand_in()
    chosen = select_pool(config, gpus=1, gpu_type="nvidia-l4")
    assert chosen.name == "l4x4"
    pod = _textbook_gpu_pod(node_selector={GPU_TYPE_LABEL: "nvidia-l4"})
    schedule_gpu_pod(pod, config)
    assert pod.spec.node_selector == {GPU_TYPE_LABEL: "nvidia-l4"}  # not the stand-in's type
    assert gpu_pool_slots(pod, config) == (chosen.airflow_pool, 1)
    task = container_task("fit", image="trainer", gpus=1, gpu_type="nvidia-l4", config=config)
    assert assign_gpu_pool(task, task.build_pod_request_obj(dry_run=True), config) == (
        "l4-gpus",
        1,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["airflow_pools"].clear(), r"pools: gpu\.airflow_pool 'gpu-gpus' is not in"),
        (
            lambda d: d["airflow_pools"]["gpu-gpus"].update(slots=0),
            r"airflow_pools\.gpu-gpus\.slots must be an integer >= 1",
        ),
        (
            lambda d: d["pools"][0].update(airflow_pool="cpu-gpus"),
            r"pools\[0\]\.airflow_pool must name an Airflow pool, on a GPU pool only",
        ),
        (lambda d: d.update(airflow_pools=[]), r"airflow_pools must map each pool"),
    ],
    ids=["pool not listed", "no slots", "on a CPU pool", "not a mapping"],
)
def test_a_bad_pools_document_is_refused_by_key(change, message: str):
    doc = _kind_document()
    change(doc)
    with pytest.raises(PlatformConfigError, match=message):
        parse_config(doc)


def test_a_document_without_airflow_pools_pools_nothing():
    doc = _kind_document()
    del doc["airflow_pools"]
    for pool in doc["pools"]:
        pool.pop("airflow_pool")
    config = parse_config(doc)
    task = container_task("fit", image="trainer", gpus=1, config=config)
    pod = task.build_pod_request_obj(dry_run=True)
    assert assign_gpu_pool(task, pod, config) is None
    assert task.pool == DEFAULT_POOL
