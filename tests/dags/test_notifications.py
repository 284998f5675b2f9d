"""Every DAG reports failures and run ends; the training DAG declares a run deadline.

The deadline alert's callback is run here as the triggerer runs it, against a real SMTP
server on 127.0.0.1 (the local runtime's sink); a whole run that misses its deadline is in
tests/integration/test_notifications_local.py.
"""

from __future__ import annotations

import asyncio
import copy
import email
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline
from airflow.sdk.module_loading import import_string

from ml_contract import load_spec
from ml_platform.local.notifications import (
    local_notifications,
    local_smtp_sink,
    run_callback_as_triggerer,
    smtp_connection,
    wait_for_messages,
)
from ml_platform.notifications import (
    SMTP_NOTIFIER,
    Message,
    RunEndNotifier,
    TaskFailureNotifier,
    _email,
    _slack,
    one_line,
    run_deadline,
)
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfigError, parse_config
from ml_platform.training_dag import training_dag

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"


def _config(notifications: object) -> dict:
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    doc["notifications"] = notifications
    return doc


def _local_config():
    return parse_config(_config(local_notifications()))


def test_the_channels_are_read_from_the_platform_document() -> None:
    doc = _config({**local_notifications(), "slack": {"channel": "#ml", "conn_id": "slack"}})
    channels = parse_config(doc).notifications
    assert channels.email.to == ("ml-team@localhost",) and channels.email.conn_id == "smtp_default"
    assert channels.slack.channel == "#ml"
    assert parse_config(json.loads(DEFAULT_CONFIG_FILE.read_text())).notifications.channels == ()


@pytest.mark.parametrize(
    ("notifications", "key"),
    [
        ({"email": {"to": "ml@x", "from": "a@x", "conn_id": "c"}}, "notifications.email.to"),
        ({"email": {"to": ["ml@x"], "conn_id": "c"}}, "notifications.email.from"),
        ({"slack": {"channel": "#ml"}}, "notifications.slack.conn_id"),
        ({"pager": {}}, "notifications.pager"),
    ],
)
def test_a_bad_channel_names_its_key(notifications: dict, key: str) -> None:
    with pytest.raises(PlatformConfigError, match=key.replace(".", r"\.")):
        parse_config(_config(notifications))


def _churn_dag(dag_id: str, deadline: timedelta | None) -> DAG:
    """The churn spec's training DAG, with the local email channel, and `deadline`."""
    return training_dag(
        load_spec(REPO_DAGS / "churn_classifier.model.yaml"), dag_id=dag_id, schedule=None,
        catchup=False, tags=["t"], start_date=datetime(2026, 1, 1, tzinfo=UTC),
        deadline=deadline, config=_local_config(),
    )  # fmt: skip


def test_the_training_dag_declares_a_deadline_from_queued_per_channel() -> None:
    dag = _churn_dag("deadline_test", timedelta(minutes=45))
    [alert] = dag.deadline
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)
    assert alert.interval == timedelta(minutes=45)
    assert alert.callback.path == SMTP_NOTIFIER
    assert alert.callback.kwargs["to"] == ["ml-team@localhost"]
    assert isinstance(dag.on_success_callback, RunEndNotifier)
    assert dag.on_success_callback.summary_task == "notify"
    assert isinstance(dag.on_failure_callback, RunEndNotifier)
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(c, TaskFailureNotifier) for c in callbacks), task
    assert not _churn_dag("no_deadline", None).deadline


def test_every_dag_of_the_repo_reports_its_end_and_its_failed_tasks(dagbag) -> None:
    for dag_id in ("ml_training_pipeline", "ml_drift_monitor"):
        dag = dagbag.dags[dag_id]
        assert dag.on_success_callback and dag.on_failure_callback, dag_id
        for task in dag.tasks:
            assert task.on_failure_callback, f"{dag_id}.{task.task_id}"


def test_the_deadline_callback_delivers_as_the_triggerer_runs_it(tmp_path: Path) -> None:
    [alert] = _churn_dag("deadline_test", timedelta(minutes=30)).deadline
    queued = datetime(2026, 11, 3, 6, tzinfo=UTC)
    context = {  # what the scheduler hands a missed deadline's callback
        "dag_run": {"dag_id": "deadline_test", "dag_run_id": "scheduled__2026-11-03",
                    "state": "running", "queued_at": queued.isoformat()},
        "deadline": {"id": "d1", "deadline_time": queued + timedelta(minutes=30)},
    }  # fmt: skip
    with local_smtp_sink(tmp_path / "notifications") as sink:
        previous = os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT")
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_connection(sink.port)
        try:
            kwargs = {**copy.deepcopy(alert.callback.kwargs), "context": context}
            event = asyncio.run(
                asyncio.wait_for(run_callback_as_triggerer(alert.callback.path, kwargs), 30)
            )
        finally:
            if previous is None:
                os.environ.pop("AIRFLOW_CONN_SMTP_DEFAULT")
            else:
                os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = previous
        [saved] = wait_for_messages(sink, 1)
    assert event["state"] == "success", event
    assert saved.subject == (
        "[ml-platform kind] deadline_test: run not done 30 minutes after it was queued"
    )
    message = email.message_from_bytes(saved.path.read_bytes())
    body = next(p for p in message.walk() if p.get_content_type() == "text/html")
    text = body.get_payload(decode=True).decode()
    assert "run:      scheduled__2026-11-03" in text
    assert "deadline: 2026-11-03 06:30:00+00:00 (30 minutes after queued)" in text


def test_a_deadline_alert_sets_up_its_channel_as_a_run_time_message_does() -> None:
    """The triggerer builds each channel's notifier from its alert's kwargs: the same
    recipients, sender, connections and layout as the messages sent at run time."""
    config = parse_config(
        _config({**local_notifications(), "slack": {"channel": "#ml", "conn_id": "slack"}})
    )
    email_alert, slack_alert = run_deadline(timedelta(hours=1), config)
    message = Message("[ml-platform kind] d: run failed", ("dag:      d",))
    channels = config.notifications
    pairs = [
        (email_alert, _email(channels.email, message), ("to", "from_email", "smtp_conn_id")),
        (slack_alert, _slack(channels.slack, message), ("channel", "slack_conn_id", "username")),
    ]
    for alert, at_run_time, fields in pairs:
        notifier = import_string(alert.callback.path)(**alert.callback.kwargs)
        assert type(notifier) is type(at_run_time)
        for field in fields:
            assert getattr(notifier, field) == getattr(at_run_time, field), field
    assert email_alert.callback.kwargs["html_content"].startswith("<pre>dag:      {{")
    assert slack_alert.callback.kwargs["text"].startswith("*[ml-platform kind] {{ dag_run")
    assert slack_alert.callback.kwargs["text"].endswith("```")


def test_the_reason_is_the_last_line_of_the_error() -> None:
    assert one_line(RuntimeError("Traceback ...\n  detail\ncolumn 'x': 3 nulls\n")) == (
        "column 'x': 3 nulls"
    )
    assert one_line(KeyError()) == "KeyError"
    assert one_line(None) == "no reason recorded"
