"""The examples team's diabetes regression: parses, passes the platform checks, and is the
platform pipeline for its spec (an error metric: lower is better)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG

from ml_contract import SPEC_ENV, load_spec
from ml_platform.pools import gpu_request
from ml_platform.testing import build_task_pod, dag_findings, load_dag

REPO = Path(__file__).resolve().parents[3]
DAG_FILE = REPO / "dags/teams/examples/diabetes_regression.py"
SPEC = load_spec(REPO / "dags/teams/examples/diabetes.model.yaml")
DAG_ID = "examples.diabetes_regression"


@pytest.fixture(scope="module")
def dag() -> DAG:
    return load_dag(DAG_FILE, DAG_ID)


def test_passes_the_platform_checks() -> None:
    assert [str(finding) for finding in dag_findings(DAG_FILE)] == []


def test_the_spec_is_a_regression_on_rmse() -> None:
    assert (SPEC.model, SPEC.task, SPEC.metric) == ("diabetes-progression", "regression", "rmse")
    assert not SPEC.deciding_metric.higher_is_better
    assert SPEC.feature_names == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    assert SPEC.column("sex").categories == ("1", "2")


def test_owned_by_the_team_and_bounded(dag: DAG) -> None:
    assert dag.default_args["owner"] == "examples"
    assert "team:examples" in dag.tags
    assert dag.max_active_runs == 1


def test_train_runs_the_platform_trainer_on_a_gpu(dag: DAG) -> None:
    pod = build_task_pod(dag, "train")
    assert pod.metadata.labels["ml-platform/image"] == "trainer"
    assert gpu_request(pod) == 1
    env = {var.name: var.value for var in pod.spec.containers[0].env}
    assert env[SPEC_ENV] == SPEC.to_json()


def test_the_bar_is_the_specs_and_a_run_can_change_it(dag: DAG) -> None:
    assert dag.params["threshold"] == SPEC.promotion.threshold == 70
    assert dag.params["metric"] == "rmse"
    args = build_task_pod(dag, "evaluate").spec.containers[0].args
    assert args[args.index("--threshold") + 1] == "{{ params.threshold }}"
