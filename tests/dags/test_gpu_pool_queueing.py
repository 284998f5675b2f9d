"""A sweep larger than the GPUs queues in Airflow, not as Pending pods: the real scheduler's
choice of task instances to queue (its pool, per-run and per-DAG limits), on a real metadata
database, for two runs of a three-trial GPU sweep on kind's document (one node, two GPUs).

task_policy caps each run at the two trials one node holds (max_active_tis_per_dagrun), so
without the Airflow pool the scheduler would start four pods for two GPUs; with it, two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform.local.run_dag import LOCAL_SETTINGS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("gpu_pool_queueing.py")
DAG_ID = "gpu_sweep"
SWEEP_DAG = """
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import mapped_container_task

with DAG(
    dag_id="gpu_sweep",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    mapped_container_task(
        "train",
        image="trainer",
        gpus=1,
        cpu="1500m",
        memory="3Gi",
        arguments=[["train", "--lr", lr] for lr in ("0.1", "0.01", "0.001")],
    )
"""


@pytest.fixture
def airflow_home(tmp_path: Path) -> dict[str, str]:
    """A fresh metadata database each: the runs of one test must not meet another's."""
    home = tmp_path
    dags = home / "dags"
    dags.mkdir()
    (dags / "gpu_sweep.py").write_text(SWEEP_DAG)
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ML_PLATFORM"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": str(REPO / "dags"),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    return env


def _schedule(env: dict[str, str], *slots: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), env["AIRFLOW__CORE__DAGS_FOLDER"], DAG_ID, "2", *slots],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_sweep_larger_than_the_gpus_waits_in_the_pool(airflow_home: dict[str, str]):
    seen = _schedule(airflow_home)
    assert (seen["pool"], seen["pool_slots"], seen["max_active_tis_per_dagrun"]) == (
        "gpu-gpus",
        1,
        2,
    )
    assert seen["train_instances"] == 6
    # Two GPUs: two trials start, whichever run they belong to; four wait in Airflow.
    assert sum(seen["queued"]) == 2


def test_without_the_pools_limit_each_run_would_start_its_two(airflow_home: dict[str, str]):
    """The control: a pool as large as the sweep lets the per-run cap decide (2 + 2)."""
    seen = _schedule(airflow_home, "16")
    assert seen["queued"] == [2, 2]
