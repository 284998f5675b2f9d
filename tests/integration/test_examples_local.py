"""The examples team's two DAGs end to end under real Airflow in the local runtime.

Each generates its demo partition (the day's sample of a scikit-learn dataset, under the
team's dataset prefix), validates and preprocesses it under its spec, trains (the platform's
MLP for the regression, the team's own image as a local process for the wine model), and a
first run deploys the best candidate. `make run-dag` prints the summary `make demo` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from deployer.targets.local import stop_all_models
from ml_platform.local.demo import GeneratedData, format_summary, run_dag_locally
from ml_platform.local.mlflow_server import MlflowServer, free_port
from ml_platform.local.run_dag import DAGS_FOLDER

pytestmark = pytest.mark.slow

DAY = date(2026, 11, 3)
DIABETES = "examples.diabetes_regression"
WINE = "examples.wine_custom"
TEAM_DATA = Path("datasets/teams/examples")


@pytest.fixture(scope="module")
def diabetes_run(platform: tuple[Path, MlflowServer]) -> dict[str, Any]:
    local_dir, server = platform
    return run_dag_locally(
        local_dir, server.url, DAY, {}, dag_id=DIABETES, data=GeneratedData(rows=300)
    )


@pytest.fixture(scope="module")
def wine_run(platform: tuple[Path, MlflowServer]) -> dict[str, Any]:
    local_dir, server = platform
    return run_dag_locally(local_dir, server.url, DAY, {}, dag_id=WINE, data=GeneratedData())


def _client(server: MlflowServer) -> MlflowClient:
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _ask(endpoint: str, features: pd.DataFrame) -> list[Any]:
    response = requests.post(
        f"{endpoint}/invocations",
        json={"dataframe_split": features.to_dict(orient="split")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_the_regression_trains_on_its_own_data_and_deploys(
    platform: tuple[Path, MlflowServer], diabetes_run: dict[str, Any]
) -> None:
    local_dir, server = platform
    assert diabetes_run["state"] == "success", diabetes_run["task_states"]
    partition = local_dir / TEAM_DATA / "diabetes-progression" / "daily" / DAY.isoformat()
    frame = pd.read_parquet(partition / "data.parquet")
    assert len(frame) == 300
    assert diabetes_run["task_states"]["train"] == ["success", "success"]
    summary = diabetes_run["results"]["notify"]
    metrics = summary["best_metrics"]
    assert {"val_rmse", "test_rmse", "val_r2", "test_mae"} <= set(metrics)
    # select_best took the lowest validation RMSE of the sweep.
    client = _client(server)
    runs = client.search_runs([client.get_experiment_by_name("diabetes-progression").experiment_id])
    assert summary["best_run_id"] == min(runs, key=lambda r: r.data.metrics["val_rmse"]).info.run_id
    assert summary["should_deploy"] is True, summary["reason"]
    assert summary["deployed"]["version"] == "1"
    features = frame.drop(columns=["patient_id", "progression"]).head(3)
    predictions = _ask(summary["deployed"]["endpoint"], features)
    assert len(predictions) == 3


def test_the_regression_summary_is_the_demos(diabetes_run: dict[str, Any]) -> None:
    lines = format_summary(diabetes_run, "ui").splitlines()
    assert ": success in " in lines[0]
    assert any(line.startswith("  best metrics: ") and "val_rmse=" in line for line in lines)
    assert "  champion before this run: none" in lines
    assert any(line.startswith("  deployed:     diabetes-progression version 1") for line in lines)


def test_the_team_image_trains_as_a_local_process_and_deploys(
    platform: tuple[Path, MlflowServer], wine_run: dict[str, Any]
) -> None:
    local_dir, server = platform
    assert wine_run["state"] == "success", wine_run["task_states"]
    assert wine_run["task_states"]["train"] == ["success", "success"]
    summary = wine_run["results"]["notify"]
    assert {"max_depth", "n_estimators"} <= set(summary["best_params"])
    assert summary["best_metrics"]["test_f1"] >= 0.8, summary["reason"]
    assert summary["should_deploy"] is True, summary["reason"]
    client = _client(server)
    champion = client.get_model_version_by_alias("wine-cultivar", "champion")
    assert champion.run_id == summary["best_run_id"]
    partition = local_dir / TEAM_DATA / "wine-cultivar" / "daily" / DAY.isoformat()
    frame = pd.read_parquet(partition / "data.parquet")
    features = frame.drop(columns=["wine_id", "cultivar"]).head(2)
    predictions = _ask(summary["deployed"]["endpoint"], features)
    assert len(predictions) == 2


def test_make_run_dag_ends_with_the_demo_summary(tmp_path: Path) -> None:
    """`make run-dag DAG=examples.wine_custom`, for real: its own MLflow, data and report."""
    done = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.demo", "--dag", WINE]
        + ["--local-dir", str(tmp_path), "--mlflow-port", str(free_port())]
        + ["--date", DAY.isoformat()],
        env={**os.environ, "PYTHONPATH": str(DAGS_FOLDER)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        # The summary comes last, after Airflow's own log lines (some name the DAG run too).
        summary = done.stdout[done.stdout.rindex("\nDAG run ") + 1 :].splitlines()
        assert ": success in " in summary[0]
        assert summary[1].startswith("  best params:  {")
        assert any(line.startswith("  decision:     ") for line in summary)
        assert any(line.startswith("  deployed:     wine-cultivar version 1") for line in summary)
    finally:
        stop_all_models(tmp_path / "deployer")
