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
from airflow.sdk import DAG  # noqa: E402
from kubernetes.client import models as k8s  # noqa: E402

from ml_platform import inspection  # noqa: E402
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
    return inspection.container_tasks(dag_bag())


def _sweep_arguments(dag: DAG) -> list[str]:
    """What the pipeline's `hyperparameters` task returns first for the DAG's default params."""
    params = {name: dag.params[name] for name in dag.params}
    combo = build_combinations(params, platform_config().max_sweep_combinations)[0]
    return trainer_arguments(combo, "s3://bucket/prepared/2026-01-01", params["model_name"])


# The real first sweep combination, rather than the generic stand-in for run-time arguments.
MAPPED_SAMPLES = {
    (PIPELINE_DAG_ID, "train"): lambda dag: {"arguments": _sweep_arguments(dag)},
}


def concrete_operator(dag: DAG, task_id: str) -> KubernetesPodOperator:
    return inspection.concrete_operator(dag, task_id, MAPPED_SAMPLES)


def build_pod(dag_id: str, task_id: str) -> k8s.V1Pod:
    """The pod KubernetesPodOperator would submit, without a cluster (dry_run)."""
    return inspection.build_pod(concrete_operator(dag_bag().dags[dag_id], task_id))


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
