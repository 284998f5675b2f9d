"""Why each task of a local run failed, in one line, for the summary at the end.

dag.test() logs a failed task's traceback among everything else; the summary names the
gate that stopped the run instead. An Airflow listener (the same hook a plugin would use)
keeps the last line of each failure.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl


class FailureRecorder:
    """Listener: task_id -> the one-line reason of its last failure (retries included)."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        text = str(error or "failed without an error").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        self.reasons[task_instance.task_id] = lines[-1] if lines else type(error).__name__


def record_failures() -> FailureRecorder:
    """A recorder registered with the task runner's listener manager of this process."""
    from airflow.sdk.listener import get_listener_manager

    recorder = FailureRecorder()
    get_listener_manager().add_listener(recorder)
    return recorder
