"""The real DAGs under real Airflow in the local runtime, against a real MLflow server.

One story, in order, sharing one local platform (datasets, Airflow DB, model server):
first run deploys, a second run on the same data skips, bad data stops at validate, and the
drift monitor triggers retraining only for drifted data.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from ml_platform.local.demo import run_dag_locally
from ml_platform.local.mlflow_server import MlflowServer
from ml_platform.local.partitions import generate_partition

pytestmark = pytest.mark.slow

DAY = date(2026, 11, 3)
BAD_DAY = date(2026, 11, 4)
DRIFT_DAY = date(2026, 11, 5)
MODEL = "churn-integration"
CONF = {"model_name": MODEL, "learning_rates": [0.001, 0.01], "epochs": 4}
DOWNSTREAM_OF_VALIDATE = ["data_preparation.preprocess", "train", "select_best", "evaluate"]


@pytest.fixture(scope="module")
def first_run(platform: tuple[Path, MlflowServer]) -> dict[str, Any]:
    local_dir, server = platform
    generate_partition(local_dir, DAY, drift=0.0, rows=3000)
    # `make run-dag ARGS='--existing-data'`: the placed partition, not regenerated.
    return run_dag_locally(local_dir, server.url, DAY, CONF, existing_data=True)


@pytest.fixture(scope="module")
def second_run(platform: tuple[Path, MlflowServer], first_run: dict[str, Any]) -> dict[str, Any]:
    local_dir, server = platform
    return run_dag_locally(local_dir, server.url, DAY, CONF)


def _client(server: MlflowServer) -> MlflowClient:
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _states(outcome: dict[str, Any], task_id: str) -> list[str]:
    return outcome["task_states"][task_id]


def test_first_run_trains_every_combination_and_deploys_the_best(
    platform: tuple[Path, MlflowServer], first_run: dict[str, Any]
) -> None:
    _, server = platform
    assert first_run["state"] == "success", first_run["task_states"]
    assert _states(first_run, "train") == ["success", "success"]
    client = _client(server)
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["learning_rate"] for r in runs) == ["0.001", "0.01"]
    best_run = max(runs, key=lambda r: r.data.metrics["val_roc_auc"])
    assert first_run["results"]["select_best"]["run_id"] == best_run.info.run_id

    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == "1"
    assert champion.run_id == best_run.info.run_id
    summary = first_run["results"]["notify"]
    assert summary["should_deploy"] is True
    assert summary["deployed"]["version"] == "1"
    assert _states(first_run, "skip_deploy") == ["skipped"]


def test_the_deployed_endpoint_answers_from_the_champion(
    platform: tuple[Path, MlflowServer], first_run: dict[str, Any]
) -> None:
    local_dir, _ = platform
    endpoint = first_run["results"]["notify"]["deployed"]["endpoint"]
    partition = local_dir / "datasets" / "daily" / DAY.isoformat()
    rows = pd.read_parquet(next(partition.glob("*.parquet"))).head(3)
    features = rows.drop(columns=["customer_id", "churned"])
    response = requests.post(
        f"{endpoint}/invocations",
        json={"dataframe_split": features.to_dict(orient="split")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    version = requests.get(f"{endpoint}/version", timeout=10).json()
    assert str(version["model_version"]) == "1"


def test_second_run_on_same_data_skips_deployment(
    platform: tuple[Path, MlflowServer], second_run: dict[str, Any]
) -> None:
    _, server = platform
    assert second_run["state"] == "success", second_run["task_states"]
    assert _states(second_run, "deploy") == ["skipped"]
    assert _states(second_run, "skip_deploy") == ["success"]
    assert _states(second_run, "notify") == ["success"]
    summary = second_run["results"]["notify"]
    assert summary["should_deploy"] is False
    assert summary["champion_before"]["version"] == "1"
    client = _client(server)
    assert [v.version for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"


def test_existing_data_runs_on_the_placed_partition_unchanged(
    platform: tuple[Path, MlflowServer], first_run: dict[str, Any]
) -> None:
    local_dir, _ = platform
    files = list((local_dir / "datasets" / "daily" / DAY.isoformat()).glob("*.parquet"))
    assert len(pd.concat(pd.read_parquet(f) for f in files)) == 3000  # not the source's 4000
    assert first_run["state"] == "success"


def test_existing_data_without_a_partition_stops_with_one_line(
    platform: tuple[Path, MlflowServer], capfd: pytest.CaptureFixture[str]
) -> None:
    local_dir, server = platform
    empty_day = date(2026, 10, 1)
    with pytest.raises(SystemExit) as stopped:
        run_dag_locally(local_dir, server.url, empty_day, CONF, existing_data=True)
    assert stopped.value.code == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("run_dag: --existing-data: no Parquet file in ")
    where = local_dir / "datasets" / "daily" / "2026-10-01"
    assert err[-1].split(" in ", 1)[1].startswith(str(where.resolve()))


def test_bad_data_stops_at_validate_and_registers_nothing(
    platform: tuple[Path, MlflowServer], second_run: dict[str, Any]
) -> None:
    local_dir, server = platform
    partition = local_dir / "datasets" / "daily" / BAD_DAY.isoformat()
    generate_partition(local_dir, BAD_DAY, drift=0.0, rows=500)
    data_file = next(partition.glob("*.parquet"))
    frame = pd.read_parquet(data_file)
    frame.loc[3, "monthly_charges"] = float("nan")
    frame.to_parquet(data_file, index=False)

    outcome = run_dag_locally(local_dir, server.url, BAD_DAY, CONF)

    assert outcome["state"] == "failed"
    assert _states(outcome, "data_preparation.validate") == ["failed"]  # one try, no retry
    for task_id in DOWNSTREAM_OF_VALIDATE:
        assert _states(outcome, task_id) == ["upstream_failed"], task_id
    assert "success" not in _states(outcome, "notify")
    client = _client(server)
    assert [v.version for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"


def _monitor(platform: tuple[Path, MlflowServer], day: date, drift: float) -> dict[str, Any]:
    local_dir, server = platform
    generate_partition(local_dir, day, drift=drift, rows=3000)
    conf = {"model_name": MODEL}
    return run_dag_locally(local_dir, server.url, day, conf, dag_id="ml_drift_monitor")


def test_monitor_leaves_undrifted_data_alone(
    platform: tuple[Path, MlflowServer], second_run: dict[str, Any]
) -> None:
    outcome = _monitor(platform, date(2026, 11, 6), drift=0.0)
    assert outcome["state"] == "success", outcome["task_states"]
    report = outcome["results"]["check_drift"]
    assert report["should_retrain"] is False, report["reason"]
    assert report["champion"]["version"] == "1"
    assert _states(outcome, "trigger_training") == ["skipped"]


def test_monitor_triggers_retraining_on_drifted_data(
    platform: tuple[Path, MlflowServer], second_run: dict[str, Any]
) -> None:
    outcome = _monitor(platform, DRIFT_DAY, drift=1.5)
    assert outcome["state"] == "success", outcome["task_states"]
    report = outcome["results"]["check_drift"]
    assert report["should_retrain"] is True
    assert report["drifted_features"], report
    assert _states(outcome, "trigger_training") == ["success"]
    triggered = [
        r
        for r in outcome["dag_runs"]
        if r["dag_id"] == "ml_training_pipeline" and r["run_id"].startswith("drift__2026-11-05")
    ]
    assert len(triggered) == 1
