"""Notifications of local runs, delivered to the real SMTP server the local runtime starts.

Each run's messages are read back from the .eml files the server saved under
<local dir>/notifications/: a run stopped by a bad param reports the task and its reason
(once as the task's failure, once as the run's end), a good run reports its summary, and a
deadline shorter than the run fires while the run goes on.
"""

from __future__ import annotations

import email
from datetime import date
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from ml_platform.local.demo import format_summary, run_dag_locally
from ml_platform.local.mlflow_server import MlflowServer
from ml_platform.local.partitions import generate_partition

pytestmark = pytest.mark.slow

DAY = date(2026, 11, 3)
UNREACHABLE_MLFLOW = "http://127.0.0.1:9"  # runs that stop before any task reaches MLflow
TOO_LARGE_GRID = {"learning_rates": [0.1, 0.2, 0.3, 0.4, 0.5], "batch_sizes": [16, 32, 64, 128]}

SLOW_DAG = '''
"""A run that outlasts its deadline."""
import time
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task

from ml_platform.dag_defaults import platform_default_args
from ml_platform.notifications import run_callbacks, run_deadline

with DAG(
    dag_id="slow_run",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args=platform_default_args("ml-platform", timedelta(minutes=5), retries=0),
    tags=["test"],
    deadline=run_deadline(timedelta(seconds=2)),
    **run_callbacks(),
) as dag:

    @task
    def outlast_the_deadline() -> str:
        time.sleep(8)
        return "done"

    outlast_the_deadline()
'''


def _body(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode()


def _messages(outcome: dict[str, Any]) -> dict[str, str]:
    """Subject -> body of each message the run's notifications left on disk."""
    found = {}
    for sent in outcome["notifications"]:
        message = email.message_from_bytes(Path(sent["path"]).read_bytes())
        assert message["To"] == "ml-team@localhost"
        found[message["Subject"]] = _body(message)
    return found


def _message(messages: dict[str, str], subject: str) -> str:
    """The body of the message with `subject`, which must be among `messages`."""
    assert subject in messages, list(messages)
    return messages[subject]


@pytest.fixture(scope="module")
def bad_param_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    local_dir = tmp_path_factory.mktemp("bad-param")
    return run_dag_locally(local_dir, UNREACHABLE_MLFLOW, DAY, TOO_LARGE_GRID)


def test_a_bad_param_reports_the_failed_task_and_its_reason(bad_param_run) -> None:
    assert bad_param_run["state"] == "failed"
    messages = _messages(bad_param_run)
    subject = "[ml-platform local] ml_training_pipeline: task hyperparameters failed"
    body = _message(messages, subject)
    assert "task:     hyperparameters (try 1)" in body
    assert "reason:   sweep: the grid has 20 combinations" in body
    # dag.test() keeps no log files and the local runtime has no Airflow UI: the message says
    # where the log is instead of linking to nothing.
    assert "log:      in the run&#x27;s output" in body


def test_the_failed_run_reports_its_end_with_the_same_reason(bad_param_run) -> None:
    messages = _messages(bad_param_run)
    subject = "[ml-platform local] ml_training_pipeline: run failed at hyperparameters"
    body = _message(messages, subject)
    assert "state:    failed (task_failure)" in body
    assert "reason:   sweep: the grid has 20 combinations" in body
    assert not [s for s in messages if "not done" in s]  # the 8-hour deadline did not pass


def test_the_summary_says_where_the_messages_are(bad_param_run) -> None:
    summary = format_summary(bad_param_run, "ui")
    folder = bad_param_run["notifications_dir"]
    assert f"notifications: 2 email(s) to the local SMTP server, saved in {folder}" in summary
    assert Path(folder).name == "notifications"
    assert len(list(Path(folder).glob("*.eml"))) == 2


def test_a_deadline_shorter_than_the_run_notifies(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slow_run.py").write_text(SLOW_DAG)
    outcome = run_dag_locally(
        tmp_path / "local", UNREACHABLE_MLFLOW, DAY, {}, dag_id="slow_run", dags_folder=dags
    )
    assert outcome["state"] == "success"
    assert [d["name"] for d in outcome["deadlines_missed"]] == ["run-deadline-email"]
    assert outcome["deadlines_missed"][0]["status"] == "success"
    subject = "[ml-platform local] slow_run: run not done 0.0333333 minutes after it was queued"
    body = _message(_messages(outcome), subject)
    assert f"run:      {outcome['run_id']}" in body
    assert "state:    running" in body
    # The run went on and its end was reported after the deadline's message.
    assert [m["subject"] for m in outcome["notifications"]][-1].endswith("run succeeded")


def test_a_good_run_reports_its_summary(
    platform: tuple[Path, MlflowServer],
) -> None:
    local_dir, server = platform
    generate_partition(local_dir, DAY, drift=0.0, rows=2000)
    conf = {"model_name": "churn-notified", "learning_rates": [0.01], "epochs": 2}
    outcome = run_dag_locally(local_dir, server.url, DAY, conf, existing_data=True)
    assert outcome["state"] == "success", outcome["failures"]
    messages = _messages(outcome)
    subject = "[ml-platform local] ml_training_pipeline: run succeeded"
    assert list(messages) == [subject]
    body = messages[subject]
    assert "summary (notify):" in body
    assert "model_name: churn-notified" in body
    assert f"best_run_id: {outcome['results']['notify']['best_run_id']}" in body
    assert "deployed: " in body
