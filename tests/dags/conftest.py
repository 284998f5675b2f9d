"""Shared parts for the DAG and platform-library tests: one real DagBag over dags/, and pods.

Airflow reads AIRFLOW_HOME once, when `airflow` is first imported, so it is pointed at a
throwaway folder here, at import time, before any test module imports Airflow. Parsing a
DagBag needs no metadata database in Airflow 3 (the DAG files only use the Task SDK), so
none is created; with a fresh home there is no airflow_local_settings either, which keeps
airflow.settings.pod_mutation_hook the no-op that KubernetesPodOperator calls while building.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)

import pytest  # noqa: E402
from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: E402
from airflow.sdk import DAG, XComArg  # noqa: E402
from airflow.sdk.definitions.mappedoperator import MappedOperator  # noqa: E402
from kubernetes.client import models as k8s  # noqa: E402

from ml_platform.pools import gpu_request  # noqa: E402
from ml_platform.settings import PlatformConfig, platform_config  # noqa: E402
from ml_platform.sweep import build_combinations, trainer_arguments  # noqa: E402

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
PIPELINE_DAG_ID = "ml_training_pipeline"


@cache
def dag_bag() -> DagBag:
    """Every DAG file under dags/, parsed once per session the way the DAG processor does."""
    return DagBag(dag_folder=str(DAGS_FOLDER))


def container_tasks() -> list[tuple[str, str]]:
    """(dag_id, task_id) of every KubernetesPodOperator task, mapped ones included."""
    found = []
    for dag_id, dag in sorted(dag_bag().dags.items()):
        for task in dag.tasks:
            op_class = task.operator_class if isinstance(task, MappedOperator) else type(task)
            if isinstance(op_class, type) and issubclass(op_class, KubernetesPodOperator):
                found.append((dag_id, task.task_id))
    return found


def _sweep_arguments(dag: DAG) -> list[str]:
    """What the pipeline's `hyperparameters` task returns first for the DAG's default params."""
    params = {name: dag.params[name] for name in dag.params}
    combo = build_combinations(params)[0]
    return trainer_arguments(combo, "s3://bucket/prepared/2026-01-01", params["model_name"])


# (dag_id, task_id) of a mapped container task -> the values of map index 0, per keyword.
MAPPED_SAMPLES = {
    (PIPELINE_DAG_ID, "train"): lambda dag: {"arguments": _sweep_arguments(dag)},
}


def concrete_operator(dag: DAG, task_id: str) -> KubernetesPodOperator:
    """The operator a worker would run for `task_id` (map index 0 for a mapped task).

    A MappedOperator (from `.partial(...).expand(...)`) is not an operator instance and has no
    build_pod_request_obj. At run time the task runner resolves the expand input and calls
    `MappedOperator.unmap(resolved_kwargs)`, which merges partial_kwargs (and params) with the
    mapped values, refuses keys given both ways, and instantiates operator_class with the DAG,
    task group and max_active_tis_per_dagrun. We call that same method with sample values
    instead of building `operator_class(**partial_kwargs)` by hand, which would skip those
    steps. A mapped task without samples in MAPPED_SAMPLES fails here, saying so.
    """
    task = dag.get_task(task_id)
    if not isinstance(task, MappedOperator):
        return task
    sample = MAPPED_SAMPLES.get((dag.dag_id, task_id))
    assert sample, f"{dag.dag_id}.{task_id} is mapped: add its sample values to MAPPED_SAMPLES"
    values = sample(dag)
    expanded = task.expand_input.value  # {keyword: XComArg or literal} for .expand(**kwargs)
    assert isinstance(expanded, dict) and set(expanded) == set(values), (
        f"{dag.dag_id}.{task_id} expands {expanded!r}; MAPPED_SAMPLES gives {sorted(values)}"
    )
    return task.unmap(values)


def build_pod(dag_id: str, task_id: str) -> k8s.V1Pod:
    """The pod KubernetesPodOperator would submit, without a cluster (dry_run)."""
    op = concrete_operator(dag_bag().dags[dag_id], task_id)
    pod = op.build_pod_request_obj(dry_run=True)
    for container in pod.spec.containers:
        # An XComArg inside `arguments` (e.g. best["run_id"]) is resolved when the task
        # renders its templates; a stand-in string keeps the pod serializable. Anything else
        # that is not a string stays, so the schema check rejects it as Kubernetes would.
        if container.args:
            container.args = [
                "xcom-value" if isinstance(arg, XComArg) else arg for arg in container.args
            ]
    return pod


@pytest.fixture(scope="session")
def dagbag() -> DagBag:
    return dag_bag()


@pytest.fixture(scope="session")
def pipeline_dag() -> DAG:
    bag = dag_bag()
    assert PIPELINE_DAG_ID in bag.dags, f"DAGs found: {sorted(bag.dag_ids)}, {bag.import_errors}"
    return bag.dags[PIPELINE_DAG_ID]


@pytest.fixture
def platform() -> PlatformConfig:
    """The configuration the DAGs were parsed with (ML_PLATFORM_CONFIG, else the kind stack)."""
    return platform_config()


@pytest.fixture
def pipeline_pods(pipeline_dag: DAG) -> dict[str, k8s.V1Pod]:
    """task_id -> dry-run pod, for every container task of ml_training_pipeline."""
    return {
        task_id: build_pod(dag_id, task_id)
        for dag_id, task_id in container_tasks()
        if dag_id == pipeline_dag.dag_id
    }


# Tests ask for one of these arguments to run once per container task of every DAG: any
# task, the ones whose pod asks for GPUs, or the others. Their value is (dag_id, task_id).
_TASK_KINDS = {
    "container_task": lambda pod: True,
    "gpu_container_task": lambda pod: gpu_request(pod) > 0,
    "cpu_container_task": lambda pod: gpu_request(pod) == 0,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argument, wanted in _TASK_KINDS.items():
        if argument in metafunc.fixturenames:
            tasks = [t for t in container_tasks() if wanted(build_pod(*t))]
            metafunc.parametrize(argument, tasks, ids=[f"{d}.{t}" for d, t in tasks])


@pytest.fixture
def container_pod(request: pytest.FixtureRequest) -> k8s.V1Pod:
    """A fresh dry-run pod of the task this test is parametrized with (whichever kind)."""
    for argument in _TASK_KINDS:
        if argument in request.fixturenames:
            return build_pod(*request.getfixturevalue(argument))
    raise pytest.UsageError("container_pod needs one of " + ", ".join(_TASK_KINDS))
