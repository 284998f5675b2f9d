"""default_args the platform recommends: an owner, retries with exponential backoff, a timeout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def platform_default_args(
    owner: str, execution_timeout: timedelta, retries: int = 2
) -> dict[str, Any]:
    """Retries back off exponentially from one minute, capped at fifteen."""
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": execution_timeout,
    }
