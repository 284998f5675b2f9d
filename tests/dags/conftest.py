"""Shared parts for the DAG and platform-library tests: one real DagBag over dags/, and pods.

Airflow reads AIRFLOW_HOME once, when `airflow` is first imported, so it is pointed at a
throwaway folder here, at import time, before any test module imports Airflow. Parsing a
DagBag needs no metadata database in Airflow 3 (the DAG files only use the Task SDK), so
none is created; with a fresh home there is no airflow_local_settings either, which keeps
airflow.settings.pod_mutation_hook the no-op that KubernetesPodOperator calls while building.

The pods the contract tests get are the ones a cluster receives: build_pod applies the
platform's pod_mutation_hook, as airflow_local_settings installs it on the cluster (and in
the local runtime). They cover every container task of dags/ and the textbook GPU operator
of tests/checks/good_dags (a raw KubernetesPodOperator with a GPU limit and nothing else),
which only schedules because of that hook.
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
from ml_platform.container import PlatformPodOperator  # noqa: E402
from ml_platform.policies import pod_mutation_hook, task_policy  # noqa: E402
from ml_platform.pools import gpu_request  # noqa: E402
from ml_platform.settings import CONFIG_ENV, PlatformConfig, platform_config  # noqa: E402
from ml_platform.sweep import build_combinations, trainer_arguments  # noqa: E402

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
# DAGs outside dags/ whose pods the contract tests cover too: operators as the provider's
# docs write them, which the platform accepts (check-dags, policies) and must place.
TEXTBOOK_DAG_FILES = [
    Path(__file__).resolve().parents[1] / "checks" / "good_dags" / "textbook_gpu_pod.py",
]
PIPELINE_DAG_ID = "ml_training_pipeline"


def _with_task_policy(bag: DagBag) -> DagBag:
    """The platform's task_policy applied to every task, as the cluster's DAG processor does
    (airflow_local_settings): it gives each pod task its team's identity."""
    for dag in bag.dags.values():
        for task in dag.tasks:
            task_policy(task)
    return bag


@cache
def dag_bag() -> DagBag:
    """Every DAG file under dags/, parsed once per session the way the DAG processor does."""
    return _with_task_policy(DagBag(dag_folder=str(DAGS_FOLDER)))


@cache
def textbook_bags() -> tuple[DagBag, ...]:
    return tuple(
        _with_task_policy(DagBag(dag_folder=str(path), safe_mode=False))
        for path in TEXTBOOK_DAG_FILES
    )


def _dag(dag_id: str) -> DAG:
    for bag in (dag_bag(), *textbook_bags()):
        if dag_id in bag.dags:
            return bag.dags[dag_id]
    raise KeyError(f"no DAG {dag_id!r} in dags/ or {[str(p) for p in TEXTBOOK_DAG_FILES]}")


def container_tasks() -> list[tuple[str, str]]:
    """(dag_id, task_id) of every KubernetesPodOperator task of dags/ and the textbook DAGs,
    mapped ones included."""
    tasks = inspection.container_tasks(dag_bag())
    for bag in textbook_bags():
        assert bag.dags and not bag.import_errors, f"{bag.dag_folder}: {bag.import_errors}"
        tasks += inspection.container_tasks(bag)
    return tasks


def is_platform_task(dag_id: str, task_id: str) -> bool:
    """Made by the platform's factory (container_task), which sets namespace, env, labels."""
    task = _dag(dag_id).get_task(task_id)
    op_class = getattr(task, "operator_class", type(task))
    return isinstance(op_class, type) and issubclass(op_class, PlatformPodOperator)


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


def build_offline_pod(dag_id: str, task_id: str) -> k8s.V1Pod:
    """The pod as check-dags builds it (dry run), before pod_mutation_hook."""
    return inspection.build_pod(concrete_operator(_dag(dag_id), task_id))


def build_pod(dag_id: str, task_id: str) -> k8s.V1Pod:
    """The pod KubernetesPodOperator would submit, without a cluster (dry_run): at the end
    of build_pod_request_obj Airflow calls pod_mutation_hook, the platform's on a cluster."""
    pod = build_offline_pod(dag_id, task_id)
    pod_mutation_hook(pod)
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
def kind_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ML_PLATFORM_CONFIG: the default (kind) document, which the DAGs were parsed with, is
    what code reading the process config (the hook, the pools) sees too."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)


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
# task, the ones whose pod asks for GPUs, the others, or the ones the platform's factory made
# (what it adds beyond the policies). Their value is (dag_id, task_id).
_TASK_KINDS = {
    "container_task": lambda task, pod: True,
    "gpu_container_task": lambda task, pod: gpu_request(pod) > 0,
    "cpu_container_task": lambda task, pod: gpu_request(pod) == 0,
    "platform_container_task": lambda task, pod: is_platform_task(*task),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argument, wanted in _TASK_KINDS.items():
        if argument in metafunc.fixturenames:
            tasks = [t for t in container_tasks() if wanted(t, build_pod(*t))]
            metafunc.parametrize(argument, tasks, ids=[f"{d}.{t}" for d, t in tasks])


def _parametrized_task(request: pytest.FixtureRequest) -> tuple[str, str]:
    for argument in _TASK_KINDS:
        if argument in request.fixturenames:
            return request.getfixturevalue(argument)
    raise pytest.UsageError("a pod fixture needs one of " + ", ".join(_TASK_KINDS))


@pytest.fixture
def container_pod(request: pytest.FixtureRequest) -> k8s.V1Pod:
    """A fresh pod, as the cluster receives it, of the task this test is parametrized with."""
    return build_pod(*_parametrized_task(request))


@pytest.fixture
def offline_container_pod(request: pytest.FixtureRequest) -> k8s.V1Pod:
    """The same task's pod as check-dags builds it: before pod_mutation_hook."""
    return build_offline_pod(*_parametrized_task(request))
