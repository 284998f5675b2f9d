"""Tell people what happened to a run: a task's failure, every run's end, a missed deadline.

The channels are the platform document's `notifications` (ml_platform.settings): email through
the smtp provider's SmtpNotifier, Slack through the slack provider's SlackNotifier, over the
Airflow connections the deployment provides (infra: ml_infra.notifications). Every DAG of the
factory and every task of `platform_default_args` reports:

- a task that fails for good (retries spent): the task, its one-line reason and its log;
- the run's end: on success the summary its summary task returned, on failure the task that
  failed, its reason (pushed as the `failure` XCom when it failed) and its log;
- a run not done by its deadline (`run_deadline`): an Airflow deadline alert; the scheduler
  notices the miss and the triggerer runs the provider's notifier, so it needs no import of
  this library there.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import conf
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from ml_platform.settings import (
    EmailChannel,
    Notifications,
    PlatformConfig,
    SlackChannel,
    platform_config,
)

log = logging.getLogger(__name__)

FAILURE_KEY = "failure"  # XCom: a failed task's one-line reason, for the run's end message
# The deadline counts from when the run was queued: a scheduled run waiting for the previous
# one (max_active_runs=1) is late as well.
DEADLINE_REFERENCE = DeadlineReference.DAGRUN_QUEUED_AT
SMTP_NOTIFIER = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
SLACK_NOTIFIER = "airflow.providers.slack.notifications.slack.SlackNotifier"


class NotificationError(RuntimeError):
    """A channel did not take the message; the others were still tried."""


@dataclass(frozen=True)
class Message:
    subject: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def one_line(error: BaseException | str | None) -> str:
    """The last non-empty line of an error: what a trainer or check printed last, as a rule."""
    text = str(error or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    return type(error).__name__ if isinstance(error, BaseException) else "no reason recorded"


def _subject(event: str, dag_id: str, config: PlatformConfig | None = None) -> str:
    environment = (config or platform_config()).environment
    return f"[ml-platform {environment}] {dag_id}: {event}"


def log_file(ti: Any) -> str | None:
    """Where the task's log lies: under the remote log folder on a cluster; locally the file,
    when there is one (dag.test() prints task logs instead of writing them)."""
    import jinja2

    template = conf.get("logging", "log_filename_template", fallback=None)
    if not template:
        return None
    remote = conf.getboolean("logging", "remote_logging", fallback=False)
    folder = conf.get("logging", "remote_base_log_folder" if remote else "base_log_folder")
    if not folder:
        return None
    relative = jinja2.Template(template).render(ti=ti, try_number=ti.try_number)
    path = f"{folder.rstrip('/')}/{relative}"
    return path if remote or Path(path).is_file() else None


def _log_lines(ti: Any) -> list[str]:
    lines = []
    if conf.get("api", "base_url", fallback=None) and getattr(ti, "log_url", None):
        lines.append(f"log:      {ti.log_url}")  # the task's log on the Airflow UI
    path = log_file(ti)
    if path:
        lines.append(f"log file: {path}")
    return lines or ["log:      in the run's output (no log folder or Airflow UI configured)"]


def _task_lines(ti: Any, reason: str) -> list[str]:
    task = ti.task_id + (f"[{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else "")
    return [f"task:     {task} (try {ti.try_number})", f"reason:   {reason}", *_log_lines(ti)]


def _run_lines(context: Mapping[str, Any]) -> list[str]:
    dag_run = context.get("dag_run")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", "")
    lines = [f"run:      {run_id}"]
    logical_date = getattr(dag_run, "logical_date", None)
    if logical_date:
        lines.append(f"date:     {logical_date:%Y-%m-%d}")
    return lines


def _shown(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _summary_lines(summary: Any) -> list[str]:
    if isinstance(summary, Mapping):
        return [f"  {key}: {_shown(value)}" for key, value in summary.items()]
    return [f"  {summary}"] if summary is not None else []


def _pull_through_task_sdk(ti: Any, task_id: str, key: str, map_index: int | None) -> Any:
    kwargs: dict[str, Any] = {"task_ids": task_id, "key": key}
    if map_index is not None and map_index >= 0:
        kwargs["map_indexes"] = map_index
    return ti.xcom_pull(**kwargs)


# A DAG callback reads XComs through the DAG processor on a cluster; dag.test() runs DAG
# callbacks in its own process, where the local runtime reads the metadata DB instead.
XComReader = Callable[[Any, str, str, int | None], Any]
_read_xcom: XComReader = _pull_through_task_sdk


def read_xcom_with(reader: XComReader) -> None:
    global _read_xcom
    _read_xcom = reader


def _email_kwargs(channel: EmailChannel, subject: str, html_text: str) -> dict[str, Any]:
    """SmtpNotifier's arguments: the text (already HTML) as a preformatted body."""
    return {
        "to": list(channel.to),
        "from_email": channel.from_email,
        "subject": subject,
        "html_content": f"<pre>{html_text}</pre>",
        "smtp_conn_id": channel.conn_id,
    }


def _slack_kwargs(channel: SlackChannel, subject: str, text: str) -> dict[str, Any]:
    """SlackNotifier's arguments: the subject in bold over the text as a code block."""
    return {
        "slack_conn_id": channel.conn_id,
        "channel": channel.channel,
        "text": f"*{subject}*\n```{text}```",
        "username": "ml-platform",
    }


def _email(channel: EmailChannel, message: Message) -> BaseNotifier:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(**_email_kwargs(channel, message.subject, html.escape(message.text)))


def _slack(channel: SlackChannel, message: Message) -> BaseNotifier:
    from airflow.providers.slack.notifications.slack import SlackNotifier

    return SlackNotifier(**_slack_kwargs(channel, message.subject, message.text))


def deliver(
    message: Message, context: Mapping[str, Any], notifications: Notifications | None = None
) -> int:
    """Send `message` on every channel; returns how many took it. The message goes to the
    task's log too, so a stack without channels still has it somewhere."""
    channels = (notifications or platform_config().notifications).channels
    log.info("notification: %s\n%s", message.subject, message.text)
    errors = []
    for channel in channels:
        notifier = (
            _email(channel, message)
            if isinstance(channel, EmailChannel)
            else _slack(channel, message)
        )
        try:
            # notify(), not __call__: the text is final, and an error quoting "{{" must not be
            # rendered as a template.
            notifier.notify(dict(context))  # type: ignore[arg-type]
        except Exception as exc:  # one channel down must not silence the others
            log.exception("notification: %s did not take the message", type(channel).__name__)
            errors.append(f"{type(channel).__name__}: {one_line(exc)}")
    if errors:
        raise NotificationError("; ".join(errors))
    return len(channels)


class TaskFailureNotifier(BaseNotifier):
    """on_failure_callback of every platform task: the task, its reason and its log."""

    def __init__(self, notifications: Notifications | None = None) -> None:
        super().__init__()
        self.notifications = notifications

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        reason = one_line(context.get("exception"))
        try:
            ti.xcom_push(key=FAILURE_KEY, value=reason)  # the run's end message quotes it
        except Exception:  # the message below matters more than the XCom
            log.exception("could not keep the failure reason as an XCom")
        dag_id = ti.dag_id
        message = Message(
            _subject(f"task {ti.task_id} failed", dag_id),
            (f"dag:      {dag_id}", *_run_lines(context), *_task_lines(ti, reason)),
        )
        deliver(message, context, self.notifications)


class RunEndNotifier(BaseNotifier):
    """A DAG's on_success_callback / on_failure_callback: every run's end, either way."""

    def __init__(
        self,
        succeeded: bool,
        summary_task: str | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        super().__init__()
        self.succeeded = succeeded
        self.summary_task = summary_task
        self.notifications = notifications

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no template fields); and dag.test() hands DAG callbacks a
        serialized DAG, which has no template environment to render with."""

    def notify(self, context: Any) -> None:
        dag_id = context["dag"].dag_id
        ti = context.get("ti")
        lines = [f"dag:      {dag_id}", *_run_lines(context)]
        if self.succeeded:
            lines.append("state:    success")
            summary = None
            if self.summary_task and ti is not None:
                summary = _read_xcom(ti, self.summary_task, "return_value", None)
            if summary is not None:
                lines += [f"summary ({self.summary_task}):", *_summary_lines(summary)]
            subject = _subject("run succeeded", dag_id)
        else:
            lines.append(f"state:    failed ({context.get('reason') or 'task_failure'})")
            if ti is not None:
                reason = _read_xcom(ti, ti.task_id, FAILURE_KEY, getattr(ti, "map_index", None))
                lines += _task_lines(ti, reason or "see the task's log")
                subject = _subject(f"run failed at {ti.task_id}", dag_id)
            else:
                subject = _subject("run failed", dag_id)
        deliver(Message(subject, tuple(lines)), context, self.notifications)


def run_callbacks(
    summary_task: str | None = None, notifications: Notifications | None = None
) -> dict[str, Any]:
    """The DAG arguments that report every run's end; `summary_task`'s result is the summary."""
    return {
        "on_success_callback": RunEndNotifier(True, summary_task, notifications),
        "on_failure_callback": RunEndNotifier(False, summary_task, notifications),
    }


def _run_page() -> list[str]:
    """The run's page on the Airflow UI, where the stack says where the UI is."""
    base_url = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    if not base_url.startswith("http"):
        return []
    return [f"run page: {base_url}/dags/{{{{ dag_run.dag_id }}}}/runs/{{{{ dag_run.dag_run_id }}}}"]


def run_deadline(interval: timedelta, config: PlatformConfig | None = None) -> list[DeadlineAlert]:
    """One deadline alert per channel: a run not done `interval` after it was queued notifies.

    The callback is the provider's notifier itself (what the triggerer can import), with
    templates rendered from the context the scheduler hands it (`dag_run`, `deadline`).
    """
    config = config or platform_config()
    minutes = f"{interval.total_seconds() / 60:g}"
    subject = (
        f"[ml-platform {config.environment}] {{{{ dag_run.dag_id }}}}: "
        f"run not done {minutes} minutes after it was queued"
    )
    text = "\n".join(
        [
            "dag:      {{ dag_run.dag_id }}",
            "run:      {{ dag_run.dag_run_id }}",
            "state:    {{ dag_run.state }} (queued {{ dag_run.queued_at }})",
            f"deadline: {{{{ deadline.deadline_time }}}} ({minutes} minutes after queued)",
            *_run_page(),
        ]
    )
    notifications = config.notifications
    alerts = []
    if notifications.email:
        # Not escaped: a Jinja template, whose rendered values escaping would not reach.
        kwargs = _email_kwargs(notifications.email, subject, text)
        alerts.append(_alert(SMTP_NOTIFIER, kwargs, interval, "email"))
    if notifications.slack:
        kwargs = _slack_kwargs(notifications.slack, subject, text)
        alerts.append(_alert(SLACK_NOTIFIER, kwargs, interval, "slack"))
    return alerts


def _alert(path: str, kwargs: dict[str, Any], interval: timedelta, channel: str) -> DeadlineAlert:
    return DeadlineAlert(
        reference=DEADLINE_REFERENCE,
        interval=interval,
        callback=AsyncCallback(path, kwargs=kwargs),
        name=f"run-deadline-{channel}",
    )
