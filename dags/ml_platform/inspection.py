"""Every pod the DAGs of a folder would launch, built offline (no cluster, no database).

Shared by the tests, the contract test against each stack and the DAG checks ML teams run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, XComArg
from airflow.sdk.definitions.mappedoperator import MappedOperator
from kubernetes.client import models as k8s

# A value produced at run time (an XCom) stands in as this string in dry-run pods.
RUNTIME_VALUE = "xcom-value"

# Sample values for map index 0 of a mapped task, per (dag_id, task_id), for keywords whose
# run-time value shapes the pod beyond its arguments. Arguments need none (see below).
SampleValues = Callable[[DAG], dict[str, Any]]


def is_container_task(task: Any) -> bool:
    op_class = task.operator_class if isinstance(task, MappedOperator) else type(task)
    return isinstance(op_class, type) and issubclass(op_class, KubernetesPodOperator)


def container_tasks(bag: DagBag) -> list[tuple[str, str]]:
    """(dag_id, task_id) of every KubernetesPodOperator task, mapped ones included."""
    return [
        (dag_id, task.task_id)
        for dag_id, dag in sorted(bag.dags.items())
        for task in dag.tasks
        if is_container_task(task)
    ]


def _sample_for(value: Any, keyword: str, where: str) -> Any:
    if isinstance(value, list) and value:
        return value[0]  # a literal list: map index 0 gets its first item
    if keyword in ("arguments", "cmds"):
        return [RUNTIME_VALUE]  # what a container is told to do does not move the pod
    raise ValueError(
        f"{where} expands {keyword!r} from a run-time value: its pod cannot be built offline"
    )


def concrete_operator(
    dag: DAG, task_id: str, samples: dict[tuple[str, str], SampleValues] | None = None
) -> KubernetesPodOperator:
    """The operator a worker would run for `task_id` (map index 0 for a mapped task).

    A MappedOperator (`.partial(...).expand(...)`) has no build_pod_request_obj. At run time
    the task runner resolves the expand input and calls `MappedOperator.unmap(values)`, which
    merges partial_kwargs with the mapped values and instantiates the operator with its DAG
    and task group; the same call is made here with sample values.
    """
    task = dag.get_task(task_id)
    if not isinstance(task, MappedOperator):
        return task
    where = f"{dag.dag_id}.{task_id}"
    expanded = task.expand_input.value  # {keyword: XComArg or literal} for .expand(**kwargs)
    if not isinstance(expanded, dict):
        raise ValueError(f"{where} uses expand_kwargs: its pod cannot be built offline")
    sample = (samples or {}).get((dag.dag_id, task_id))
    values = sample(dag) if sample else {}
    for keyword, value in expanded.items():
        if keyword not in values:
            values[keyword] = _sample_for(value, keyword, where)
    return task.unmap(values)


def build_pod(operator: KubernetesPodOperator) -> k8s.V1Pod:
    """The pod the operator would submit, without a cluster (dry run)."""
    pod = operator.build_pod_request_obj(dry_run=True)
    for container in pod.spec.containers:
        # An XComArg inside `arguments` is resolved when the task renders its templates; a
        # stand-in keeps the pod serializable. Anything else stays, so a schema check
        # rejects it as Kubernetes would.
        if container.args:
            container.args = [
                RUNTIME_VALUE if isinstance(arg, XComArg) else arg for arg in container.args
            ]
    return pod


def dag_pods(
    bag: DagBag, samples: dict[tuple[str, str], SampleValues] | None = None
) -> Iterator[tuple[str, str, k8s.V1Pod]]:
    """(dag_id, task_id, pod) for every container task of the bag."""
    for dag_id, task_id in container_tasks(bag):
        yield dag_id, task_id, build_pod(concrete_operator(bag.dags[dag_id], task_id, samples))
