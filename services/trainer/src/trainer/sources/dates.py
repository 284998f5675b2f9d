"""The date a partition is for, and the seed it gives a source."""

from __future__ import annotations

import datetime as dt
import hashlib

from trainer.errors import TrainerError


def seed_for_date(date: str) -> int:
    """A stable 64-bit seed per date, the same on every machine and Python version."""
    return int.from_bytes(hashlib.sha256(date.encode()).digest()[:8], "big")


def parse_date(text: str) -> str:
    """The date as YYYY-MM-DD, or a TrainerError naming the flag."""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise TrainerError(f"--date {text!r} is not a date in YYYY-MM-DD form") from None
