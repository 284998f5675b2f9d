"""The platform on one machine, driven as its users drive it: runs triggered through Airflow's
REST API and carried out by the real scheduler, executor, triggerer and DAG processor on
PostgreSQL; what they left read from MLflow, the model server and the API.

In file order, on one model:
1. a training run triggered before its data lands: the partition sensor defers to the
   triggerer, resumes when the file lands, and the run succeeds;
2. MLflow holds one run per sweep combination and `champion` is the best of them;
3. the model server the run deployed answers /invocations;
4. the drift monitor, on a drifted day, triggers the training DAG through the scheduler;
5. the UI answers, the API wants a login, the airflow CLI sees the platform's DAGs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from ml_platform.local.airflow_client import AirflowClient
from ml_platform.local.partitions import daily_partition_dir, generate_partition
from tests.local_platform.conftest import LocalPlatform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

log = logging.getLogger("e2e-local")

DAGS = Path(__file__).resolve().parents[2] / "dags"
TRAINING = "ml_training_pipeline"
MONITOR = "ml_drift_monitor"
MODEL = "churn-e2e-local"
DAY = date(2026, 11, 2)
DRIFT_DAY = date(2026, 11, 3)
ROWS = 2000
# A small sweep: two combinations, a few epochs; the bar is low on purpose (the test is
# about the platform, not the model).
SWEEP = {
    "learning_rates": [0.003, 0.01],
    "batch_sizes": [128],
    "hidden_sizes": ["32"],
    "optimizers": ["adam"],
    "dropouts": [0.1],
    "epochs": 3,
    "metric": "roc_auc",
    "min_metric": 0.55,
}
AXES = ("learning_rates", "batch_sizes", "hidden_sizes", "optimizers", "dropouts")
COMBINATIONS = len(list(product(*(SWEEP[axis] for axis in AXES))))
PARSE_TIMEOUT_S = 180
DEFER_TIMEOUT_S = 180
RUN_TIMEOUT_S = 900
MONITOR_TIMEOUT_S = 420
SCHEDULED_TIMEOUT_S = 180


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ti(client: AirflowClient, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return next(t for t in client.task_instances(dag_id, run_id) if t["task_id"] == task_id)


def unpause_for_test(client: AirflowClient, dag_id: str) -> None:
    """Unpause the DAG and fail the one catch-up run the scheduler then creates (the latest
    interval of a daily DAG, waiting for today's data): it would hold the DAG's only active
    run slot."""
    client.wait_for_dag(dag_id, PARSE_TIMEOUT_S)
    client.unpause(dag_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        scheduled = [r for r in client.dag_runs(dag_id) if r["run_type"] == "scheduled"]
        if scheduled:
            for run in scheduled:
                client.set_run_state(dag_id, run["dag_run_id"], "failed", "not part of the test")
            return
        time.sleep(1)
    log.info("%s: no catch-up run was created", dag_id)


@pytest.fixture(scope="module")
def training_run(platform: LocalPlatform) -> dict[str, Any]:
    """A training run triggered through the REST API before its partition exists."""
    client = platform.airflow
    unpause_for_test(client, TRAINING)
    started = time.monotonic()
    run = client.trigger(TRAINING, {"model_name": MODEL, **SWEEP}, logical_date=_midnight(DAY))
    run_id = run["dag_run_id"]

    # The sensor finds no file, defers, and the triggerer takes its trigger.
    def handed_to_triggerer() -> bool:
        ti = _ti(client, TRAINING, run_id, "wait_for_data")
        return ti["state"] == "deferred" and bool((ti.get("trigger") or {}).get("triggerer_id"))

    client.wait_until("wait_for_data deferred to the triggerer", handed_to_triggerer,
                      DEFER_TIMEOUT_S)  # fmt: skip
    deferred = _ti(client, TRAINING, run_id, "wait_for_data")
    log.info("wait_for_data deferred after %.0fs", time.monotonic() - started)
    generate_partition(platform.local_dir, DAY, drift=0.0, rows=ROWS)
    landed = time.monotonic()
    state = client.wait_for_run(TRAINING, run_id, RUN_TIMEOUT_S)
    log.info("training run %s in %.0fs (%.0fs after the data landed)", state,
             time.monotonic() - started, time.monotonic() - landed)  # fmt: skip
    return {
        "run_id": run_id,
        "state": state,
        "deferred_ti": deferred,
        "task_states": client.task_states(TRAINING, run_id),
        "summary": client.xcom(TRAINING, run_id, "notify"),
        "best": client.xcom(TRAINING, run_id, "select_best"),
    }


def _mlflow(platform: LocalPlatform) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)


def test_training_run_waits_in_the_triggerer_then_succeeds(training_run: dict[str, Any]) -> None:
    assert training_run["state"] == "success", training_run["task_states"]
    trigger = training_run["deferred_ti"]["trigger"]
    assert trigger["classpath"].endswith("FileTrigger")
    states = training_run["task_states"]
    assert states["wait_for_data"] == "success"
    assert [states[f"train[{i}]"] for i in range(COMBINATIONS)] == ["success"] * COMBINATIONS
    assert states["deploy"] == "success"
    assert states["skip_deploy"] == "skipped"


def test_one_mlflow_run_per_combination_and_the_best_is_champion(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    client = _mlflow(platform)
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == COMBINATIONS
    assert sorted(float(r.data.params["learning_rate"]) for r in runs) == sorted(
        SWEEP["learning_rates"]
    )
    best = max(runs, key=lambda r: r.data.metrics["val_roc_auc"])
    assert training_run["best"]["run_id"] == best.info.run_id
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == best.info.run_id
    assert training_run["summary"]["deployed"]["version"] == champion.version


def test_the_deployed_endpoint_answers(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    endpoint = training_run["summary"]["deployed"]["endpoint"]
    partition = daily_partition_dir(platform.local_dir, DAY)
    rows = pd.read_parquet(next(partition.glob("*.parquet"))).head(3)
    features = rows.drop(columns=["customer_id", "churned"])
    response = requests.post(
        f"{endpoint}/invocations",
        json={"dataframe_split": features.to_dict(orient="split")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


def test_drift_monitor_triggers_training_through_the_scheduler(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    client = platform.airflow
    generate_partition(platform.local_dir, DRIFT_DAY, drift=0.6, rows=ROWS)
    unpause_for_test(client, MONITOR)
    conf = {"model_name": MODEL, "min_metric": 0.5}
    run_id = client.trigger(MONITOR, conf, logical_date=_midnight(DRIFT_DAY))["dag_run_id"]
    state = client.wait_for_run(MONITOR, run_id, MONITOR_TIMEOUT_S)
    assert state == "success", client.task_states(MONITOR, run_id)
    report = client.xcom(MONITOR, run_id, "check_drift")
    assert report["should_retrain"] is True, report
    assert client.task_states(MONITOR, run_id)["trigger_training"] == "success"

    # The run the operator asked for exists, and the real scheduler takes it on.
    triggered: dict[str, Any] = {}

    def scheduled() -> bool:
        runs = [r for r in client.dag_runs(TRAINING) if r["dag_run_id"].startswith("drift__")]
        if not runs:
            return False
        triggered.update(runs[0])
        states = client.task_states(TRAINING, runs[0]["dag_run_id"]).values()
        return runs[0]["state"] in ("running", "success") and any(s for s in states)

    client.wait_until("the triggered training run scheduled", scheduled, SCHEDULED_TIMEOUT_S)
    assert triggered["dag_run_id"].startswith(f"drift__{DRIFT_DAY.isoformat()}__")
    assert triggered["conf"] == {"model_name": MODEL}
    assert triggered["logical_date"].startswith(DRIFT_DAY.isoformat())
    # Its full sweep is not part of this test: stop it.
    client.set_run_state(TRAINING, triggered["dag_run_id"], "failed", "stopped by the test")


def test_the_ui_the_cli_and_auth(platform: LocalPlatform) -> None:
    client = platform.airflow
    page = requests.get(f"{client.base_url}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # Auth is on: no token, or a wrong password, gets nothing.
    assert requests.get(f"{client.base_url}/api/v2/dags", timeout=30).status_code == 401
    wrong = requests.post(
        f"{client.base_url}/auth/token",
        json={"username": client.username, "password": "not-the-password"},
        timeout=30,
    )
    assert wrong.status_code == 401
    # The airflow CLI, pointed at the platform's database by the stack.
    listed = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.stack", "--local-dir", str(platform.local_dir),
         "airflow", "dags", "list", "-o", "plain"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    listed_ids = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {TRAINING, MONITOR} <= listed_ids, listed.stdout[-2000:]
