"""Airflow cluster policies the platform ships through airflow_local_settings.

pod_mutation_hook: a pod that asks for `nvidia.com/gpu` but carries no way onto a GPU node
(a KubernetesPodOperator written the textbook way) gets the tolerations and node affinity of
the smallest GPU pool that fits it, so it schedules instead of hanging in Pending.
"""

from __future__ import annotations

import logging

from kubernetes.client import models as k8s

from ml_platform.pools import NoPoolError, _tolerates, affinity_for, fitting_pools, gpu_request
from ml_platform.settings import PlatformConfig, Pool, platform_config

log = logging.getLogger(__name__)


def _gpu_pool_for(pod: k8s.V1Pod, gpus: int, config: PlatformConfig) -> Pool:
    selector = pod.spec.node_selector or {}
    candidates = [
        pool
        for pool in config.pools
        if pool.gpus_per_node >= gpus
        and all(pool.labels.get(key) == value for key, value in selector.items())
    ]
    if not candidates:
        wanted = f"{gpus} GPU(s)" + (f" with nodeSelector {selector}" if selector else "")
        raise NoPoolError(
            f"pod {pod.metadata.name}: no pool of environment {config.environment!r} "
            f"offers {wanted}"
        )
    return min(candidates, key=lambda pool: pool.gpus_per_node)


def _add_tolerations(pod: k8s.V1Pod, pool: Pool) -> None:
    tolerations = list(pod.spec.tolerations or [])
    for taint in pool.taints:
        # Same matching as the scheduler: a toleration for the key with another value
        # (nvidia.com/gpu=true on a pool tainted nvidia.com/gpu=present) does not count.
        if not _tolerates(tolerations, taint):
            tolerations.append(
                k8s.V1Toleration(
                    key=taint.key, operator="Equal", value=taint.value, effect=taint.effect
                )
            )
    pod.spec.tolerations = tolerations


def _add_affinity(pod: k8s.V1Pod, pool: Pool) -> None:
    pool_node_affinity = affinity_for(pool).node_affinity
    pool_terms = pool_node_affinity.required_during_scheduling_ignored_during_execution
    affinity = pod.spec.affinity or k8s.V1Affinity()
    node_affinity = affinity.node_affinity or k8s.V1NodeAffinity()
    required = node_affinity.required_during_scheduling_ignored_during_execution
    if required and required.node_selector_terms:
        # Terms are ORed: the pool's labels must hold in each of them.
        pool_expressions = pool_terms.node_selector_terms[0].match_expressions
        for term in required.node_selector_terms:
            term.match_expressions = list(term.match_expressions or []) + pool_expressions
    else:
        node_affinity.required_during_scheduling_ignored_during_execution = pool_terms
    affinity.node_affinity = node_affinity
    pod.spec.affinity = affinity


def schedule_gpu_pod(pod: k8s.V1Pod, config: PlatformConfig) -> None:
    """Give a GPU-requesting pod that fits no pool the way onto a matching GPU pool."""
    gpus = gpu_request(pod)
    if gpus == 0 or fitting_pools(pod, config):
        return
    pool = _gpu_pool_for(pod, gpus, config)
    _add_tolerations(pod, pool)
    _add_affinity(pod, pool)
    log.info("pod %s: scheduled onto GPU pool %r", pod.metadata.name, pool.name)


def pod_mutation_hook(pod: k8s.V1Pod) -> None:
    """Airflow calls this for every pod it launches (KubernetesPodOperator and executors)."""
    schedule_gpu_pod(pod, platform_config())
