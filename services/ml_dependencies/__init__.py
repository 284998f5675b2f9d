"""Failing fast, in one line, when MLflow or the storage endpoint is down.

MLflow's client retries a failed request 7 times with exponential backoff (about four
minutes), and botocore and pyarrow have their own timeouts and retries: an unattended task
would hang for minutes before a traceback. One setting, ML_PLATFORM_DEPENDENCY_TIMEOUT
(seconds), bounds how long one request to any of them may take, retries and backoff
included (ml_dependencies.timeouts), and `unreachable()` turns the resulting error chain into
one line naming the endpoint (ml_dependencies.failures). The trainer and the deployer both
use this package, so the setting means the same in both images.
"""

from ml_dependencies.failures import (
    GCS_EMULATOR_ENV,
    DependencyUnreachable,
    raise_if_unreachable,
    s3_endpoint,
    unreachable,
)
from ml_dependencies.timeouts import TIMEOUT_ENV, BadBound, Bound, bound, bounded_dependencies

__all__ = [
    "GCS_EMULATOR_ENV",
    "TIMEOUT_ENV",
    "BadBound",
    "Bound",
    "DependencyUnreachable",
    "bound",
    "bounded_dependencies",
    "raise_if_unreachable",
    "s3_endpoint",
    "unreachable",
]
