"""Airflow cluster policies the platform ships through airflow_local_settings.

The deployment's airflow_local_settings installs the three functions below (the Helm values
render it in infra/ml_infra/airflow_release.py; the local runtime's is in
ml_platform.local.run_dag):

- dag_policy: every DAG has an owner (its team), tags and retries, or it is not loaded;
- task_policy: a KubernetesPodOperator declares CPU/memory requests and limits, runs a platform
  image, and is neither privileged nor on the node's network, PID or IPC namespace or disk;
  a pod task that asks for GPUs takes a slot per GPU of its GPU pool's Airflow pool
  (ml_platform.airflow_pools), so extra trials queue in Airflow;
- pod_mutation_hook: every pod Airflow creates is refused when privileged, on a hostPath or a
  host namespace; a pod that asks for `nvidia.com/gpu` but carries no way onto a GPU node (a
  KubernetesPodOperator written the textbook way) gets the tolerations and node affinity of
  the GPU pool that fits it (ml_platform.pools.preferred_pool: a pool of the type its
  nodeSelector names before a stand-in, then the smallest), so it schedules instead of hanging
  in Pending (a nodeSelector on a GPU type a pool stands in for, as on kind, is pointed at
  that pool's type);
  a KubernetesPodOperator pod runs in the training namespace (its quota, its PodSecurity
  level, the only namespace Airflow may create pods in), as the training service account
  unless it names another; it carries the label of the pool it fits; and every pod gets what
  PodSecurity `restricted` requires and it leaves unset, the XCom sidecar a restricted
  context and limits (ml_platform.pod_security).

The rules are those of `make check-dags` (ml_platform.dag_rules, ml_platform.pod_rules), so a
DAG that passed review is not refused here; messages carry the same codes.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.exceptions import AirflowClusterPolicyViolation
from kubernetes.client import models as k8s

from ml_platform.dag_rules import dag_violations
from ml_platform.pod_rules import SECURITY_CODES, operator_pod, pod_violations
from ml_platform.pod_security import restrict_pod
from ml_platform.pools import (
    GPU_TYPE_LABEL,
    POOL_LABEL,
    NoPoolError,
    _tolerates,
    affinity_for,
    describe_gpu_pools,
    fitting_pools,
    gpu_request,
    pinned_gpu_type,
    preferred_pool,
)
from ml_platform.settings import PlatformConfig, Pool, platform_config
from ml_platform.source_lines import locate_dag, locate_task
from ml_platform.violations import Violation

log = logging.getLogger(__name__)

# The label KubernetesPodOperator puts on every pod it builds (the executors' pods lack it).
# KubernetesExecutor labels its worker pods so; they stay in the Airflow namespace.
WORKER_POD_LABEL = "airflow-worker"


def _selects(pool: Pool, key: str, value: str) -> bool:
    if key == GPU_TYPE_LABEL:
        return pool.offers_gpu_type(value)  # a stand-in type counts (kind)
    return pool.labels.get(key) == value


def _gpu_pool_for(pod: k8s.V1Pod, gpus: int, config: PlatformConfig) -> Pool:
    selector = pod.spec.node_selector or {}
    candidates = [
        pool
        for pool in config.pools
        if pool.gpus_per_node >= gpus
        and all(_selects(pool, key, value) for key, value in selector.items())
    ]
    if not candidates:
        wanted = f"{gpus} GPU(s)" + (f" with nodeSelector {selector}" if selector else "")
        raise NoPoolError(
            f"pod {pod.metadata.name}: no pool of environment {config.environment!r} "
            f"offers {wanted} (GPU pools: {describe_gpu_pools(config)})"
        )
    return preferred_pool(candidates, pinned_gpu_type(pod))


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
    selector = pod.spec.node_selector or {}
    if selector.get(GPU_TYPE_LABEL, pool.gpu_type) != pool.gpu_type:
        # Pinned to a type this pool stands in for: select the label its nodes really carry.
        pod.spec.node_selector = {**selector, GPU_TYPE_LABEL: pool.gpu_type}
    _add_tolerations(pod, pool)
    _add_affinity(pod, pool)
    log.info("pod %s: scheduled onto GPU pool %r", pod.metadata.name, pool.name)


def place_in_training_namespace(pod: k8s.V1Pod, config: PlatformConfig) -> None:
    """A task pod with no namespace of its own goes to the training namespace, as the
    training identity.

    KubernetesPodOperator without `namespace` puts its pod in "default" or in the worker's own
    namespace (airflow), where Airflow may not create pods and no GPU quota or PodSecurity
    level applies."""
    if WORKER_POD_LABEL in (pod.metadata.labels or {}):
        return
    training = config.namespaces["training"]
    if pod.metadata.namespace in (None, "", "default", config.namespaces["airflow"]):
        log.info("pod %s: namespace %r -> %r", pod.metadata.name, pod.metadata.namespace, training)
        pod.metadata.namespace = training
    if pod.metadata.namespace == training and pod.spec.service_account_name in (
        None,
        "",
        "default",
    ):
        pod.spec.service_account_name = config.service_accounts["training"]


def label_pool(pod: k8s.V1Pod, config: PlatformConfig) -> None:
    """Name the pool a pod fits in its labels (the factory does it for its own pods), so
    quotas, dashboards and `kubectl get pods -l` see every pod's pool."""
    labels = pod.metadata.labels or {}
    if POOL_LABEL not in labels:
        pools = fitting_pools(pod, config)
        if pools:
            pod.metadata.labels = {**labels, POOL_LABEL: pools[0].name}


def _refuse(violations: list[Violation], path: str, line: int) -> None:
    raise AirflowClusterPolicyViolation("; ".join(str(v.at(path, line)) for v in violations))


def dag_policy(dag: Any) -> None:
    """Airflow calls this for every DAG it parses: refuse a DAG without owner, tags or retries."""
    violations = dag_violations(dag)
    if violations:
        _refuse(violations, *locate_dag(dag.fileloc, dag.dag_id))


def _is_pod_operator(task: Any) -> bool:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    op_class = task.operator_class if isinstance(task, MappedOperator) else type(task)
    return isinstance(op_class, type) and issubclass(op_class, KubernetesPodOperator)


def task_policy(task: Any) -> None:
    """Airflow calls this for every task it parses: check a KubernetesPodOperator's pod."""
    from ml_platform.deployer_rules import dag_team, deployer_violations
    from ml_platform.team_identities import assign_team_identity, identity_violations

    if not _is_pod_operator(task):
        return
    pod = operator_pod(task)
    violations = pod_violations(
        pod,
        where=f"task {task.task_id!r}",
        registry=platform_config().images.registry,
        base_container=pod.spec.containers[0].name,
    )
    team = dag_team(task.dag.fileloc)
    violations += deployer_violations(
        pod,
        base_container=pod.spec.containers[0].name,
        team=team,
        where=f"task {task.task_id!r}",
        config=platform_config(),
    )
    violations += identity_violations(pod, platform_config(), f"task {task.task_id!r}", team=team)
    if violations:
        _refuse(violations, *locate_task(task.dag.fileloc, task.dag.dag_id, task.task_id))
    assign_team_identity(task, platform_config(), team)
    _place_gpu_task(task, pod, platform_config())


def _place_gpu_task(task: Any, pod: k8s.V1Pod, config: PlatformConfig) -> None:
    """A GPU task's Airflow pool and sweep limit, both from its pod placed once as
    pod_mutation_hook will place it."""
    from ml_platform.airflow_pools import assign_gpu_pool

    if not gpu_request(pod):
        return
    try:
        schedule_gpu_pod(pod, config)  # as pod_mutation_hook will: the pool it lands on
    except NoPoolError:
        return  # refused when the pod is created (MLP301 in make check-dags)
    assign_gpu_pool(task, pod, config)
    limit = limit_gpu_sweep(task, pod, config)
    if limit is not None:
        log.warning(
            "task %s.%s: max_active_tis_per_dagrun lowered to %d, what environment %r runs "
            "of its pod at once (make check-dags: MLP303)",
            task.dag.dag_id,
            task.task_id,
            limit,
            config.environment,
        )


def limit_gpu_sweep(task: Any, pod: k8s.V1Pod, config: PlatformConfig) -> int | None:
    """At parse time (task_policy): lower a mapped GPU task's max_active_tis_per_dagrun to
    what the stack holds of its pod at once, so extra trials queue in Airflow instead of
    Pending or quota-refused pods. `pod` is the task's pod from its arguments (operator_pod,
    the XCom sidecar included) as pod_mutation_hook leaves it (schedule_gpu_pod applied).
    Returns the new limit, or None if unchanged.
    """
    # Imported here: airflow_local_settings imports this module while Airflow starts.
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from ml_platform.capacity import capacity, concurrency

    if not isinstance(task, MappedOperator) or not gpu_request(pod):
        return None
    held = capacity(pod, config)
    if held is None or held.fits < 1 or concurrency(task.dag, task, config).copies <= held.fits:
        return None
    task.max_active_tis_per_dagrun = held.fits
    return held.fits


def _deployer_label_violations(pod: k8s.V1Pod, where: str) -> list[Violation]:
    from ml_platform.deployer_rules import deployer_label_violations

    if not (pod.spec and pod.spec.containers):
        return []
    base = pod.spec.containers[0].name  # the operator's own container comes first
    return deployer_label_violations(
        pod, base_container=base, where=where, config=platform_config()
    )


def _identity_violations(pod: k8s.V1Pod, where: str) -> list[Violation]:
    from ml_platform.team_identities import identity_violations

    return identity_violations(pod, platform_config(), where)


def refuse_unsafe_pod(pod: k8s.V1Pod) -> None:
    """Raise AirflowClusterPolicyViolation for a privileged, hostPath or host-namespace pod."""
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    where = f"pod {pod.metadata.name if pod.metadata else None!r}"
    if labels.get("dag_id") and labels.get("task_id"):
        where += f" of task {labels['dag_id']}.{labels['task_id']}"
    violations = pod_violations(pod, where=where, codes=SECURITY_CODES)
    violations += _deployer_label_violations(pod, where)
    violations += _identity_violations(pod, where)
    if violations:
        # Only the pod is known here; task_policy names the line when the DAG is parsed.
        raise AirflowClusterPolicyViolation(
            "; ".join(f"{v.code} {v.message} ({v.fix})" for v in violations)
        )


def pod_mutation_hook(pod: k8s.V1Pod) -> None:
    """Airflow calls this for every pod it launches (KubernetesPodOperator and executors)."""
    config = platform_config()
    refuse_unsafe_pod(pod)
    place_in_training_namespace(pod, config)
    schedule_gpu_pod(pod, config)
    label_pool(pod, config)
    restrict_pod(pod)
