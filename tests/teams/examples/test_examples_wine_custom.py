"""The examples team's wine model: parses, passes the platform checks, and trains with the
team's own image (images/wine-trainer/) inside the platform pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG

from ml_contract import SPEC_ENV, load_spec
from ml_platform.pools import gpu_request
from ml_platform.settings import platform_config
from ml_platform.testing import build_task_pod, dag_findings, load_dag

REPO = Path(__file__).resolve().parents[3]
DAG_FILE = REPO / "dags/teams/examples/wine_custom.py"
SPEC = load_spec(REPO / "dags/teams/examples/wine.model.yaml")
DAG_ID = "examples.wine_custom"


@pytest.fixture(scope="module")
def dag() -> DAG:
    return load_dag(DAG_FILE, DAG_ID)


def test_passes_the_platform_checks() -> None:
    assert [str(finding) for finding in dag_findings(DAG_FILE)] == []


def test_the_spec_is_multiclass_on_f1() -> None:
    assert (SPEC.model, SPEC.task, SPEC.metric) == ("wine-cultivar", "multiclass", "f1")
    assert SPEC.classes == ("class_0", "class_1", "class_2")
    assert len(SPEC.features) == 13
    assert "od280_od315_of_diluted_wines" in SPEC.feature_names
    assert SPEC.trainer.image == "wine-trainer"


def test_owned_by_the_team(dag: DAG) -> None:
    assert {task.owner for task in dag.tasks} == {"examples"}
    assert "team:examples" in dag.tags


def test_train_runs_the_teams_image_on_cpu(dag: DAG) -> None:
    pod = build_task_pod(dag, "train")
    base = pod.spec.containers[0]
    assert base.image == platform_config().images.team_ref("examples", "wine-trainer")
    assert gpu_request(pod) == 0
    assert {var.name: var.value for var in base.env}[SPEC_ENV] == SPEC.to_json()


def test_the_sweep_is_over_the_images_hyperparameters(dag: DAG) -> None:
    params = dag.params.validate()
    combos = dag.get_task("hyperparameters").python_callable(params=params, ds="2026-11-03")
    assert [c[c.index("--max-depth") + 1] for c in combos] == ["3", "6"]
    assert all(c[0] == "train" and "--n-estimators" in c for c in combos)
