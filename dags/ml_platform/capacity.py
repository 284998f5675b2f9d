"""How many copies of a pod a stack runs at once: its pools' nodes and the training GPU quota.

A mapped task (a sweep) launches up to max_active_tis_per_dagrun pods at once. The pool
holds pods_per_node x max_nodes of them; the training namespace's ResourceQuota admits
gpu_quota // gpus. Pods beyond the first limit wait Pending holding quota, pods beyond the
second are refused at creation and retried as failures. The checks report a sweep that goes
past either (MLP303); the training DAG sizes its own parallelism with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import XComArg
from airflow.sdk.definitions.mappedoperator import MappedOperator
from kubernetes.client import models as k8s

from ml_platform.pod_security import xcom_sidecar_container
from ml_platform.pools import (
    affinity_for,
    fitting_pools,
    gpu_request,
    pods_per_node,
    quantity_text,
    requested,
    select_pool,
    tolerations_for,
)
from ml_platform.settings import PlatformConfig


@dataclass(frozen=True)
class Concurrency:
    """The most copies of a task's pod one DAG run has at once, and what bounds it."""

    copies: int
    bound: str  # "max_active_tis_per_dagrun=4", "3 mapped values", ...


def _mapped_length(task: MappedOperator) -> int | None:
    """Number of map indexes when every expanded value is a literal (a cross product)."""
    expanded = task.expand_input.value
    if not isinstance(expanded, dict):
        return None
    length = 1
    for value in expanded.values():
        if isinstance(value, XComArg) or not hasattr(value, "__len__"):
            return None
        length *= len(value)
    return length


def concurrency(dag: Any, task: Any, config: PlatformConfig) -> Concurrency:
    """Copies of `task`'s pod one run of `dag` may have running at once.

    A mapped task over a run-time list is taken to be as long as the platform lets a sweep
    be (limits.max_sweep_combinations); the DAG's max_active_tasks bounds every task.
    """
    if not isinstance(task, MappedOperator):
        return Concurrency(1, "one task")
    bounds: list[tuple[int, str]] = []
    length = _mapped_length(task)
    if length is not None:
        bounds.append((length, f"{length} mapped value(s)"))
    else:
        bounds.append(
            (config.max_sweep_combinations, f"a sweep of up to {config.max_sweep_combinations}")
        )
    for attribute in ("max_active_tis_per_dagrun", "max_active_tis_per_dag"):
        value = getattr(task, attribute, None)
        if value:
            bounds.append((value, f"{attribute}={value}"))
    max_active_tasks = getattr(dag, "max_active_tasks", None)
    if max_active_tasks:
        bounds.append((max_active_tasks, f"the DAG's max_active_tasks={max_active_tasks}"))
    copies, bound = min(bounds, key=lambda b: b[0])
    return Concurrency(copies, bound)


@dataclass(frozen=True)
class Capacity:
    """What a stack runs of one pod at once, and the limit that says so."""

    fits: int
    limits: list[str]  # "pool gpu holds 2 (1 node(s) x 2 per node)", "the training GPU ..."


def capacity(pod: k8s.V1Pod, config: PlatformConfig) -> Capacity | None:
    """How many copies of `pod` (as the cluster gets it) the stack runs at once; None when
    the document does not say (no node counts, no quota) or no pool takes the pod."""
    pools = fitting_pools(pod, config)
    if not pools:
        return None  # MLP301's business
    bounds: list[tuple[int, str]] = []
    if all(p.max_nodes is not None for p in pools):
        per_pool = [(p, pods_per_node(pod, p)) for p in pools]
        held = sum(count * (p.max_nodes or 0) for p, count in per_pool)
        described = ", ".join(f"{p.max_nodes} node(s) x {count}" for p, count in per_pool)
        names = "+".join(p.name for p in pools)
        bounds.append((held, f"pool {names} holds {held} ({described} per node)"))
    gpus = gpu_request(pod)
    if gpus and config.gpu_quota is not None:
        admitted = config.gpu_quota // gpus
        bounds.append((admitted, f"the training GPU quota of {config.gpu_quota} admits {admitted}"))
    if not bounds:
        return None
    fits = min(count for count, _ in bounds)
    return Capacity(fits, [why for count, why in bounds if count == fits])


def describe_pod(pod: k8s.V1Pod) -> str:
    """`1 GPU, 1510m CPU, 3Gi memory` (all containers, sidecars included)."""
    gpus = gpu_request(pod)
    parts = [f"{gpus} GPU"] if gpus else []
    for resource, name in (("cpu", "CPU"), ("memory", "memory")):
        if amount := requested(pod, resource):
            parts.append(f"{quantity_text(resource, amount)} {name}")
    return ", ".join(parts) or "no requests"


def over_capacity(
    pod: k8s.V1Pod, wanted: Concurrency, config: PlatformConfig
) -> tuple[str, int] | None:
    """(what goes wrong, what fits) when `wanted` copies of `pod` exceed the stack; else None."""
    held = capacity(pod, config)
    if held is None or wanted.copies <= held.fits:
        return None
    gpus = gpu_request(pod)
    quota_short = gpus and config.gpu_quota is not None and wanted.copies * gpus > config.gpu_quota
    outcome = (
        "the rest are refused at creation by the quota" if quota_short else "the rest wait Pending"
    )
    message = (
        f"up to {wanted.copies} pods at once ({wanted.bound}), each {describe_pod(pod)}, but "
        f"{'; '.join(held.limits)}: {held.fits} run at once, {outcome}"
    )
    return message, held.fits


def parallel_pods(
    config: PlatformConfig,
    *,
    gpus: int,
    gpu_type: str | None,
    cpu: str,
    memory: str,
    cap: int,
) -> int:
    """How many pods of this size the stack runs side by side (at least 1, at most `cap`):
    the training DAG's default parallelism, so a sweep queues in Airflow, not in Pending."""
    from ml_platform.container import resources  # the train task's own requests and limits

    pool = select_pool(config, gpus, gpu_type)
    base = k8s.V1Container(name="base", resources=resources(cpu, memory, gpus, None, None))
    pod = k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[base, xcom_sidecar_container()],
            tolerations=tolerations_for(pool),
            affinity=affinity_for(pool),
        )
    )
    held = capacity(pod, config)
    return max(1, min(cap, held.fits if held is not None else cap))
