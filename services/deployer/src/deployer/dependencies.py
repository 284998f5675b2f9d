"""Failing fast, in one line, when MLflow or the storage endpoint is down.

MLflow's client retries a failed request 7 times with exponential backoff (about four
minutes), and botocore and pyarrow have their own timeouts and retries: an unattended task
would hang for minutes before a traceback. One setting, ML_PLATFORM_DEPENDENCY_TIMEOUT
(seconds), bounds how long one request to any of them may take, retries and backoff
included, and `unreachable()` turns the resulting error chain into one line naming the
endpoint. The trainer carries the same module (trainer.dependencies): the two images share
no code, and the setting means the same in both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

TIMEOUT_ENV = "ML_PLATFORM_DEPENDENCY_TIMEOUT"
DEFAULT_TIMEOUT_S = 25.0
# Below this bound there is no room for a retry: one attempt gets all of it.
RETRY_FROM_S = 10.0
RETRIES = 2
# urllib3 sleeps 0, then factor * 2 (+ jitter) before the second retry. MLflow reads the
# factor as an int.
BACKOFF_FACTOR = 1
BACKOFF_JITTER = 0.5
MLFLOW_ENV = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
)


class BadBound(ValueError):
    """ML_PLATFORM_DEPENDENCY_TIMEOUT is not a positive number of seconds."""


class DependencyUnreachable(Exception):
    """MLflow or storage could not be reached within the bound: the message names it."""


@dataclass(frozen=True)
class Bound:
    """How long one request to a dependency may take in all, split into attempts."""

    total_s: float

    @property
    def retries(self) -> int:
        return RETRIES if self.total_s >= RETRY_FROM_S else 0

    @property
    def attempts(self) -> int:
        return self.retries + 1

    @property
    def backoff_s(self) -> float:
        """The most all sleeps between attempts add up to (urllib3's schedule)."""
        return sum(BACKOFF_FACTOR * 2**k + BACKOFF_JITTER for k in range(1, self.retries))

    @property
    def attempt_s(self) -> int:
        """Connect and read timeout of one attempt, in whole seconds (MLflow takes an int)."""
        return max(1, int((self.total_s - self.backoff_s) / self.attempts))

    def mlflow_env(self) -> dict[str, str]:
        values = (self.attempt_s, self.retries, BACKOFF_FACTOR, BACKOFF_JITTER)
        return {name: str(value) for name, value in zip(MLFLOW_ENV, values, strict=True)}

    def botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self.attempt_s,
            read_timeout=self.attempt_s,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
        )


def bound() -> Bound:
    """The bound from ML_PLATFORM_DEPENDENCY_TIMEOUT (seconds), else the default."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return Bound(DEFAULT_TIMEOUT_S)
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise BadBound(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds above 0")
    return Bound(value)


@contextmanager
def bounded_dependencies() -> Iterator[Bound]:
    """MLflow's HTTP client and boto3 clients created inside keep to the bound; both are put
    back as they were on exit. MLFLOW_HTTP_REQUEST_* variables set explicitly are kept."""
    limits = bound()
    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    for name, value in limits.mlflow_env().items():
        os.environ.setdefault(name, value)
    restore_boto = _bound_boto3(limits)
    try:
        yield limits
    finally:
        restore_boto()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _bound_boto3(limits: Bound) -> Any:
    """boto3's default session gets the bound as its default client config (MLflow's S3
    artifact store creates its clients from it); a function that puts the old one back."""
    try:
        import boto3
        import botocore.session
    except ImportError:  # the image has no boto3: nothing talks to S3 through it
        return lambda: None
    previous = boto3.DEFAULT_SESSION
    session = botocore.session.get_session()
    session.set_default_client_config(limits.botocore_config())
    boto3.setup_default_session(botocore_session=session)

    def restore() -> None:
        boto3.DEFAULT_SESSION = previous

    return restore


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its causes and contexts (even suppressed ones), and the errors urllib3 wraps."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        link = pending.pop(0)
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending += [link.__cause__, link.__context__, getattr(link, "reason", None)]
        pending += [arg for arg in getattr(link, "args", ()) if isinstance(arg, BaseException)]


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else None


def _reason(exc: BaseException) -> str:
    """The innermost readable cause: 'Connection refused', 'timed out', 'too many 503 ...'."""
    text = " ".join(str(exc).split())
    for marker in ("Failed to establish a new connection: ", "Caused by ", "Details: "):
        text = text.rpartition(marker)[2] or text
    return text.strip("()'\" ")[:200] or type(exc).__name__


def _failure(link: BaseException) -> tuple[str, str] | None:
    """(endpoint, reason) when `link` is a failure to reach an endpoint."""
    import requests

    if isinstance(
        link,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.RetryError,
    ):
        request = getattr(link, "request", None)
        endpoint = _origin(getattr(request, "url", None))
        inner = link.args[0] if link.args and isinstance(link.args[0], BaseException) else link
        inner = getattr(inner, "reason", None) or inner
        if endpoint is None:
            pool = getattr(link.args[0], "pool", None) if link.args else None
            if pool is not None:
                endpoint = f"{pool.scheme}://{pool.host}:{pool.port}"
        return (endpoint, _reason(inner)) if endpoint else None
    kwargs = getattr(link, "kwargs", None)
    if type(link).__module__.startswith("botocore") and isinstance(kwargs, dict):
        endpoint = _origin(kwargs.get("endpoint_url"))
        if endpoint:
            return endpoint, _reason(kwargs.get("error") or link)
    if isinstance(link, OSError) and "AWS Error NETWORK_CONNECTION" in str(link):
        endpoint = _origin(s3_endpoint()) or "the S3 endpoint"
        return endpoint, _reason(link)
    return None


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")


def _named(endpoint: str) -> str:
    """The endpoint with what it is to the platform, when it is one of the configured ones."""
    if endpoint == _origin(os.environ.get("MLFLOW_TRACKING_URI")):
        return f"MLflow {endpoint}"
    if endpoint == _origin(s3_endpoint()):
        return f"storage {endpoint}"
    return endpoint


def unreachable(exc: BaseException) -> str | None:
    """One line, '<what> <url>: unreachable: <why> (...)', when `exc` comes from a dependency
    that could not be reached; None for any other error."""
    for link in _chain(exc):
        if isinstance(link, DependencyUnreachable):
            return str(link)
        found = _failure(link)
        if found:
            endpoint, reason = found
            try:
                limit = f"{bound().total_s:g}s"
            except BadBound:
                limit = "?"
            return (
                f"{_named(endpoint)}: unreachable: {reason} (gave up within {TIMEOUT_ENV}={limit})"
            )
    return None


def raise_if_unreachable(exc: BaseException) -> None:
    """For code that turns errors into answers ('no such run', 'no artifact'): a dependency
    that is down is never an answer."""
    line = unreachable(exc)
    if line:
        raise DependencyUnreachable(line) from exc
