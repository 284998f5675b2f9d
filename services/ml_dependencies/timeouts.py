"""ML_PLATFORM_DEPENDENCY_TIMEOUT: how long one request to MLflow or storage may take in all,
and the MLflow, boto3 and pyarrow (S3 and GCS) settings that keep to it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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

    def pyarrow_s3_options(self) -> dict[str, Any]:
        """Keyword arguments for pyarrow.fs.S3FileSystem; pyarrow is imported only here, as
        only the images that read storage through it have it."""
        import pyarrow.fs as pafs

        return {
            "connect_timeout": float(self.attempt_s),
            "request_timeout": float(self.attempt_s),
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=self.attempts),
        }

    def pyarrow_gcs_options(self) -> dict[str, Any]:
        """Keyword arguments for pyarrow.fs.GcsFileSystem: its retries of one call stop
        within the bound (it has no per-attempt timeout to set)."""
        return {"retry_time_limit": timedelta(seconds=self.total_s)}

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


def _bound_boto3(limits: Bound) -> Callable[[], None]:
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
