"""Turn "a GPU (of some type)" into tolerations and node affinity, and check where a pod fits.

The same rules serve the container task factory, the pod_mutation_hook, the local runtime
(which refuses a pod that no pool could schedule) and the contract tests against each stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kubernetes.client import models as k8s
from kubernetes.utils import parse_quantity

from ml_platform.settings import GPU_RESOURCE, PlatformConfig, Pool

POOL_LABEL = "ml-platform/pool"
GPU_TYPE_LABEL = "ml-platform/gpu-type"  # the pool's own gpu.type, never a stand-in


TOO_BIG_FIX = "ask for no more cpu and memory (sidecars included) than one node has allocatable"


class NoPoolError(ValueError):
    """No node pool of the environment can run what was asked for; `fix` says what to change
    when it differs from the usual (ask for what a pool offers)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


def select_pool(config: PlatformConfig, gpus: int = 0, gpu_type: str | None = None) -> Pool:
    """The pool a task asking for `gpus` GPUs (optionally of `gpu_type`) should run on."""
    if gpus < 0:
        raise NoPoolError(f"gpus={gpus}: a GPU count cannot be negative")
    if gpus == 0:
        if gpu_type:
            raise NoPoolError(f"gpu_type={gpu_type!r} given with gpus=0: ask for at least 1 GPU")
        for pool in config.pools:
            if not pool.has_gpus and not _hard_taints(pool):
                return pool
        raise NoPoolError(f"environment {config.environment!r} has no untainted CPU pool")
    gpu_pools = [p for p in config.pools if p.has_gpus]
    candidates = [p for p in gpu_pools if not gpu_type or p.offers_gpu_type(gpu_type)]
    fitting = [p for p in candidates if p.gpus_per_node >= gpus]
    if fitting:
        return preferred_pool(fitting, gpu_type)
    wanted = f"{gpus} GPU(s)" + (f" of type {gpu_type!r}" if gpu_type else "")
    # Only a gpu_type the author did set can be worth leaving out.
    hint = (
        f"; without gpu_type={gpu_type!r} it would take any GPU type"
        if gpu_type and any(p.gpus_per_node >= gpus for p in gpu_pools)
        else ""
    )
    raise NoPoolError(
        f"no pool in environment {config.environment!r} offers {wanted} on one node "
        f"(GPU pools: {describe_gpu_pools(config)}){hint}"
    )


def preferred_pool(pools: Sequence[Pool], gpu_type: str | None = None) -> Pool:
    """Of the GPU pools that can run a task, the one it goes to: a pool of the `gpu_type` asked
    for before one standing in for it (kind), then the smallest node. The one rule of
    select_pool, of the pod_mutation_hook and of the GPU Airflow pools, so they never differ."""
    return min(pools, key=lambda p: (bool(gpu_type) and p.gpu_type != gpu_type, p.gpus_per_node))


def pinned_gpu_type(pod: k8s.V1Pod) -> str | None:
    """The GPU type a pod's nodeSelector asks for (its own or one a pool stands in for)."""
    return (pod.spec.node_selector or {}).get(GPU_TYPE_LABEL)


def describe_gpu_pools(config: PlatformConfig) -> str:
    """The GPU pools on offer, as messages list them: `gpu (2x emulated-gpu, stands in for
    nvidia-l4)`."""
    described = []
    for pool in config.pools:
        if pool.has_gpus:
            stand_in = f", stands in for {', '.join(pool.stands_in_for)}"
            described.append(
                f"{pool.name} ({pool.gpus_per_node}x {pool.gpu_type}"
                f"{stand_in if pool.stands_in_for else ''})"
            )
    return ", ".join(described) or "none"


def _hard_taints(pool: Pool) -> list:
    return [t for t in pool.taints if t.effect in ("NoSchedule", "NoExecute")]


def tolerations_for(pool: Pool) -> list[k8s.V1Toleration]:
    return [
        k8s.V1Toleration(key=t.key, operator="Equal", value=t.value, effect=t.effect)
        for t in pool.taints
    ]


def affinity_for(pool: Pool) -> k8s.V1Affinity:
    """Required node affinity on every label of the pool: the pod lands on that pool only."""
    expressions = [
        k8s.V1NodeSelectorRequirement(key=key, operator="In", values=[value])
        for key, value in sorted(pool.labels.items())
    ]
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                node_selector_terms=[k8s.V1NodeSelectorTerm(match_expressions=expressions)]
            )
        )
    )


def gpu_request(pod: k8s.V1Pod) -> int:
    """GPUs the pod asks for: the sum over its containers' nvidia.com/gpu limits."""
    total = 0
    for container in pod.spec.containers or []:
        resources = container.resources
        limits = (resources.limits if resources else None) or {}
        requests = (resources.requests if resources else None) or {}
        total += int(limits.get(GPU_RESOURCE) or requests.get(GPU_RESOURCE) or 0)
    return total


def _tolerates(tolerations: Iterable[k8s.V1Toleration], taint) -> bool:
    for tol in tolerations:
        if tol.effect and tol.effect != taint.effect:
            continue
        if tol.operator == "Exists":
            if not tol.key or tol.key == taint.key:
                return True
        elif tol.key == taint.key and (tol.value or "") == (taint.value or ""):
            return True
    return False


def _expression_matches(expr: k8s.V1NodeSelectorRequirement, labels: dict[str, str]) -> bool:
    present = expr.key in labels
    if expr.operator == "In":
        return present and labels[expr.key] in (expr.values or [])
    if expr.operator == "NotIn":
        return not present or labels[expr.key] not in (expr.values or [])
    if expr.operator == "Exists":
        return present
    if expr.operator == "DoesNotExist":
        return not present
    if expr.operator in ("Gt", "Lt") and present:
        value, bound = int(labels[expr.key]), int((expr.values or ["0"])[0])
        return value > bound if expr.operator == "Gt" else value < bound
    return False


def _affinity_matches(affinity: k8s.V1Affinity | None, labels: dict[str, str]) -> bool:
    node_affinity = affinity.node_affinity if affinity else None
    required = (
        node_affinity.required_during_scheduling_ignored_during_execution if node_affinity else None
    )
    if not required or not required.node_selector_terms:
        return True
    return any(
        all(_expression_matches(e, labels) for e in (term.match_expressions or []))
        for term in required.node_selector_terms
    )


def requested(pod: k8s.V1Pod, resource: str) -> float:
    """What the scheduler adds up for `resource` (cpu in cores, memory in bytes): every
    container's request, sidecars included; a request not set defaults to the limit."""
    total = 0.0
    for container in pod.spec.containers or []:
        requests = (container.resources.requests if container.resources else None) or {}
        limits = (container.resources.limits if container.resources else None) or {}
        quantity = requests.get(resource) or limits.get(resource)
        if quantity:
            total += float(parse_quantity(quantity))
    return total


def quantity_text(resource: str, value: float) -> str:
    """A summed request written as Kubernetes would: 2010m, 4106Mi, 4Gi."""
    if resource == "cpu":
        return f"{value:g}" if value == int(value) else f"{round(value * 1000)}m"
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value / 2**20:.1f}Mi" if value >= 2**20 else f"{value:g}"


def placement_reason(pod: k8s.V1Pod, pool: Pool) -> str | None:
    """Why the scheduler would keep `pod` off `pool`'s nodes whatever their size, or None."""
    tolerations = pod.spec.tolerations or []
    for taint in _hard_taints(pool):
        if not _tolerates(tolerations, taint):
            return f"does not tolerate taint {taint.key}={taint.value}:{taint.effect}"
    for key, value in (pod.spec.node_selector or {}).items():
        if pool.labels.get(key) != value:
            return f"nodeSelector {key}={value} does not match the pool's labels"
    if not _affinity_matches(pod.spec.affinity, pool.labels):
        return "required node affinity does not match the pool's labels"
    return None


def _copies_per_node(pod: k8s.V1Pod, pool: Pool) -> dict[str, tuple[int, str]]:
    """Resource -> (copies of `pod` one node of `pool` holds by that resource alone, why not
    more), for each resource the pod asks for and the node has a size for."""
    copies: dict[str, tuple[int, str]] = {}
    gpus = gpu_request(pod)
    if gpus:
        copies["gpu"] = (
            pool.gpus_per_node // gpus,
            f"asks for {gpus} GPU(s), nodes have {pool.gpus_per_node}",
        )
    for resource in ("cpu", "memory"):
        capacity = pool.node_allocatable.get(resource)
        wanted = requested(pod, resource)
        if capacity and wanted:
            copies[resource] = (
                int(float(parse_quantity(capacity)) // wanted),
                f"requests {resource} {quantity_text(resource, wanted)} "
                f"over a node's allocatable {capacity}",
            )
    return copies


def size_reason(pod: k8s.V1Pod, pool: Pool) -> str | None:
    """Why `pod` is too big for one node of `pool` (all containers, sidecars included)."""
    return next((why for count, why in _copies_per_node(pod, pool).values() if count < 1), None)


def pods_per_node(pod: k8s.V1Pod, pool: Pool) -> int:
    """How many copies of `pod` one node of `pool` holds at once: the scheduler's bin-packing
    of GPUs, CPU and memory (all containers, sidecars included); 0 when one does not fit."""
    if placement_reason(pod, pool):
        return 0
    return min((count for count, _ in _copies_per_node(pod, pool).values()), default=1)


def unschedulable_reason(pod: k8s.V1Pod, pool: Pool) -> str | None:
    """Why `pod` cannot run on a node of `pool`, or None when it can."""
    return placement_reason(pod, pool) or size_reason(pod, pool)


def fitting_pools(pod: k8s.V1Pod, config: PlatformConfig) -> list[Pool]:
    return [pool for pool in config.pools if unschedulable_reason(pod, pool) is None]


def check_schedulable(pod: k8s.V1Pod, config: PlatformConfig) -> Pool:
    """The first pool that can run `pod`; raise naming each pool's objection otherwise."""
    pools = fitting_pools(pod, config)
    if pools:
        return pools[0]
    name, env = pod.metadata.name, config.environment
    gpus = gpu_request(pod)
    placed = [
        p for p in config.pools if placement_reason(pod, p) is None and gpus <= p.gpus_per_node
    ]
    if placed:
        # Its pool has the GPUs, its nodes not the CPU or memory: the other pools are noise.
        reasons = "; ".join(f"{p.name}: {size_reason(pod, p)}" for p in placed)
        raise NoPoolError(
            f"pod {name}: too big for every node of the pool it is placed on "
            f"in environment {env!r} ({reasons})",
            fix=TOO_BIG_FIX,
        )
    reasons = "; ".join(f"{p.name}: {unschedulable_reason(pod, p)}" for p in config.pools)
    raise NoPoolError(f"pod {name} fits no pool of environment {env!r} ({reasons})")
