"""default_args the platform recommends: an owner, retries with exponential backoff, a timeout,
and a notification when a task fails for good (ml_platform.notifications)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ml_platform.notifications import TaskFailureNotifier


def platform_default_args(
    owner: str, execution_timeout: timedelta, retries: int = 2
) -> dict[str, Any]:
    """Retries back off exponentially from one minute, capped at fifteen; a task failing after
    its last retry notifies the stack's channels (on_failure_callback)."""
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": execution_timeout,
        "on_failure_callback": TaskFailureNotifier(),
    }
