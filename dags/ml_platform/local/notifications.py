"""Notifications of a local run: a real SMTP server on 127.0.0.1, and deadlines watched.

- `local_smtp_sink`: an aiosmtpd server the local runtime's `smtp_default` connection points
  at; it saves every message it is handed under <local dir>/notifications/ as a .eml file.
- `watching_deadlines`: dag.test() runs no scheduler, so nothing notices a missed deadline
  alert (and in Airflow 3.3.2 it fails a successful run of a DAG that has one). A thread of
  the run_dag process does what the scheduler and the triggerer do on a cluster: when a
  deadline of the running run passes, it runs the alert's callback the way the triggerer does
  (airflow.triggers.callback.CallbackTrigger), with the context the scheduler hands it.
  dag.test() never queues the run, so a deadline counted from "queued" counts from the moment
  the run is handed to Airflow here.
- `read_xcom_from_metadata_db`: dag.test() runs DAG callbacks in its own process, which has
  no task supervisor to answer XCom reads; the callbacks read the metadata DB instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from ml_platform.local.mlflow_server import free_port

log = logging.getLogger("run_dag.notifications")

LOCAL_SMTP_CONN_ID = "smtp_default"
LOCAL_RECIPIENT = "ml-team@localhost"
LOCAL_SENDER = "airflow@localhost"
POLL_S = 0.5


@dataclass
class SavedMessage:
    path: Path
    subject: str
    to: str


@dataclass
class SmtpSink:
    """What the sink received, in order."""

    folder: Path
    port: int
    received: list[SavedMessage] = field(default_factory=list)


class _SavingHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        with self.lock:
            number = len(self.sink.received) + 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            path = self.sink.folder / f"{stamp}-{number:03d}.eml"
            path.write_bytes(content)
            parsed = message_from_bytes(content)
            self.sink.received.append(
                SavedMessage(path, str(make_header(decode_header(parsed["Subject"] or ""))),
                             ", ".join(envelope.rcpt_tos))
            )  # fmt: skip
        return "250 Message accepted for delivery"


@contextmanager
def local_smtp_sink(folder: Path, port: int | None = None) -> Iterator[SmtpSink]:
    """A real SMTP server on 127.0.0.1 that saves every message under `folder`."""
    from aiosmtpd.controller import Controller

    folder.mkdir(parents=True, exist_ok=True)
    sink = SmtpSink(folder=folder, port=port or free_port())
    controller = Controller(
        _SavingHandler(sink), hostname="127.0.0.1", port=sink.port, ready_timeout=10
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def smtp_connection(port: int) -> str:
    """The `smtp_default` connection (JSON) for the sink: plain SMTP, no login."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "from_email": LOCAL_SENDER,
                "disable_ssl": True,
                "disable_tls": True,
                "timeout": 10,
                "retry_limit": 1,
            },
        }
    )


def local_notifications() -> dict[str, Any]:
    """The platform document's `notifications` for the local runtime: email to the sink."""
    return {"email": {"to": [LOCAL_RECIPIENT], "from": LOCAL_SENDER, "conn_id": LOCAL_SMTP_CONN_ID}}


def read_xcom_from_metadata_db() -> None:
    """Let DAG callbacks of this process read XComs from the metadata DB (see module doc)."""
    from ml_platform.notifications import read_xcom_with

    def read(ti: Any, task_id: str, key: str, map_index: int | None) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.scalars(
                XComModel.get_many(run_id=ti.run_id, dag_ids=ti.dag_id, task_ids=task_id, key=key)
            ).all()
            wanted = map_index if map_index is not None and map_index >= 0 else -1
            for row in rows:
                if row.map_index == wanted:
                    return XComModel.deserialize_value(row)
        return None

    read_xcom_with(read)


def _alert_base_time(reference: Any, dag_run: Any, handed_over: datetime) -> datetime | None:
    from airflow.sdk.definitions.deadline import (
        DagRunLogicalDateDeadline,
        DagRunQueuedAtDeadline,
        FixedDatetimeDeadline,
    )

    if isinstance(reference, DagRunQueuedAtDeadline):
        # dag.test() never queues the run (and dates its start at the logical date): the run
        # is "queued" when the local runtime hands it to Airflow.
        return dag_run.queued_at or handed_over
    if isinstance(reference, DagRunLogicalDateDeadline):
        return dag_run.logical_date
    if isinstance(reference, FixedDatetimeDeadline):
        return reference._datetime
    return None


def _scheduler_context(
    dag_run: Any, deadline_time: datetime, queued_at: datetime
) -> dict[str, Any]:
    """The context the scheduler gives a missed deadline's callback (Deadline.handle_miss)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    run = DAGRunResponse.model_validate(dag_run).model_dump(mode="json")
    run["queued_at"] = run["queued_at"] or queued_at.isoformat()
    return {
        "dag_run": run,
        "deadline": {"id": f"local-{dag_run.run_id}", "deadline_time": deadline_time},
    }


async def run_callback_as_triggerer(path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The triggerer's way of running a deadline callback; returns its last event."""
    from airflow.triggers.callback import CallbackTrigger

    last: dict[str, Any] = {}
    async for event in CallbackTrigger(callback_path=path, callback_kwargs=dict(kwargs)).run():
        last = dict(event.payload)
    return last


@dataclass
class DeadlineWatch:
    fired: list[dict[str, Any]] = field(default_factory=list)


def _check_deadlines(
    dag: Any, pending: list[Any], watch: DeadlineWatch, handed_over: datetime
) -> bool:
    """Fire what is due; True while the run may still miss one."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag.dag_id).order_by(DagRun.id.desc()).limit(1)
        ).first()
        if dag_run is None or str(dag_run.state) != "running":
            return True
        now = datetime.now(UTC)
        for alert in list(pending):
            base = _alert_base_time(alert.reference, dag_run, handed_over)
            if base is None or base + alert.interval > now:
                continue
            pending.remove(alert)
            deadline_time = base + alert.interval
            kwargs = {
                **alert.callback.kwargs,
                "context": _scheduler_context(dag_run, deadline_time, base),
            }
            log.info("deadline %s missed at %s: running %s", alert.name, deadline_time,
                     alert.callback.path)  # fmt: skip
            event = asyncio.run(run_callback_as_triggerer(alert.callback.path, kwargs))
            watch.fired.append(
                {"name": alert.name, "deadline": deadline_time.isoformat(),
                 "callback": alert.callback.path, "status": str(event.get("state"))}
            )  # fmt: skip
    return bool(pending)


@contextmanager
def watching_deadlines(dag: Any) -> Iterator[DeadlineWatch]:
    """While the block runs dag.test(), fire the DAG's deadline alerts that fall due."""
    watch = DeadlineWatch()
    alerts = list(dag.deadline or [])
    if not alerts:
        yield watch
        return
    # dag.test() of Airflow 3.3.2 fails a DAG with deadline alerts at its successful end (it
    # looks its serialized alerts up as if they were the alerts' database ids); this thread
    # is what handles them locally, so the run itself is handed over without them.
    dag.deadline = None
    stop = threading.Event()

    handed_over = datetime.now(UTC)

    def loop() -> None:
        pending = list(alerts)
        while not stop.wait(POLL_S):
            try:
                if not _check_deadlines(dag, pending, watch, handed_over):
                    return
            except Exception:  # the run goes on; the outcome shows no deadline fired
                log.exception("checking deadlines failed")
                return

    thread = threading.Thread(target=loop, name="deadlines", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=30)
        dag.deadline = alerts


def wait_for_messages(sink: SmtpSink, count: int, timeout_s: float = 10) -> list[SavedMessage]:
    """The sink's messages once it holds `count` (or what it has after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while len(sink.received) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return list(sink.received)
