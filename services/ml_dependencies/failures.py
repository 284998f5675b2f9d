"""An error that comes from MLflow or storage being unreachable, as one line naming the
endpoint: '<what> <url>: unreachable: <why> (gave up within ML_PLATFORM_DEPENDENCY_TIMEOUT=...)'.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlparse

from ml_dependencies.timeouts import TIMEOUT_ENV, BadBound, bound

# GCS as pyarrow reaches it without STORAGE_EMULATOR_HOST, and what google-cloud-cpp (under
# pyarrow's GcsFileSystem) says once its retries end on a server it could not reach.
GCS_ENDPOINT = "https://storage.googleapis.com"
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_GCS_UNAVAILABLE = "google::cloud::Status(UNAVAILABLE"


class DependencyUnreachable(Exception):
    """MLflow or storage could not be reached within the bound: the message names it."""


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
    if isinstance(link, OSError) and _GCS_UNAVAILABLE in str(link):
        return gcs_endpoint(), _gcs_reason(str(link))
    return None


def _gcs_reason(text: str) -> str:
    """'Could not connect to server' out of google-cloud-cpp's retry-exhausted status."""
    last = text.partition("with a last message of ")[2].partition(" error_info=")[0]
    return " ".join(last.rpartition("]=")[2].split())[:200] or "unavailable"


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint the images' S3 clients use (None: AWS S3 by region)."""
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")


def gcs_endpoint() -> str:
    return _origin(os.environ.get(GCS_EMULATOR_ENV)) or GCS_ENDPOINT


def _named(endpoint: str) -> str:
    """The endpoint with what it is to the platform, when it is one of the configured ones."""
    if endpoint == _origin(os.environ.get("MLFLOW_TRACKING_URI")):
        return f"MLflow {endpoint}"
    if endpoint in (_origin(s3_endpoint()), gcs_endpoint()):
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
