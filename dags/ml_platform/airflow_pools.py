"""Airflow pools for GPUs: a GPU task waits in Airflow for a free GPU instead of as a pod.

The platform document names one Airflow pool per GPU node pool (`pools[].airflow_pool`) and
its slots (`airflow_pools`: the GPUs the node pool ever has, at most the training GPU
quota). task_policy gives every pod task that asks for GPUs the pool of the node pool it
lands on, and a slot per GPU, so a sweep larger than the GPUs queues in Airflow rather than
as Pending or quota-refused pods. The pools count deferred tasks: a deferrable pod task's
pod runs while the task is deferred. The program creates the pools on a cluster
(ml_infra.airflow_pools), the local runtime in its own metadata database.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client import models as k8s

from ml_platform.pools import fitting_pools, gpu_request, pinned_gpu_type, preferred_pool
from ml_platform.settings import PlatformConfig

DEFAULT_POOL = "default_pool"
log = logging.getLogger(__name__)


def gpu_pool_slots(pod: k8s.V1Pod, config: PlatformConfig) -> tuple[str, int] | None:
    """(Airflow pool, slots) a pod takes: its GPUs from the pool of the node pool it lands
    on; None for a pod without GPUs or one no GPU pool with an Airflow pool takes. `pod` has
    been through schedule_gpu_pod (as pod_mutation_hook will do)."""
    gpus = gpu_request(pod)
    if not gpus:
        return None
    pools = [pool for pool in fitting_pools(pod, config) if pool.airflow_pool]
    if not pools:
        return None
    # A pod may fit more than one GPU pool: the one select_pool and the hook would choose.
    pool = preferred_pool(pools, pinned_gpu_type(pod))
    return pool.airflow_pool, gpus


def assign_gpu_pool(task: Any, pod: k8s.V1Pod, config: PlatformConfig) -> tuple[str, int] | None:
    """At parse time (task_policy): put a GPU task in its GPUs' Airflow pool, a slot per GPU.
    `pod` is the task's pod as pod_mutation_hook leaves it (schedule_gpu_pod applied).
    Returns what was assigned, or None for a task that asks for no GPU."""
    wanted = gpu_pool_slots(pod, config)
    if wanted is None:
        return None
    name, slots = wanted
    if task.pool not in (DEFAULT_POOL, name):
        log.warning(
            "task %s.%s: pool %r replaced by %r, the Airflow pool of its GPUs",
            task.dag.dag_id,
            task.task_id,
            task.pool,
            name,
        )
    task.pool = name
    task.pool_slots = slots
    return wanted


def create_pools(config: PlatformConfig) -> list[str]:
    """Create (or resize) the document's Airflow pools in this Airflow's metadata database,
    as the program's pools Job does on a cluster (`airflow pools import`)."""
    from airflow.models.pool import Pool

    for name, pool in config.airflow_pools.items():
        Pool.create_or_update_pool(
            name=name,
            slots=pool["slots"],
            description=pool.get("description", ""),
            include_deferred=bool(pool.get("include_deferred", True)),
        )
    return sorted(config.airflow_pools)
