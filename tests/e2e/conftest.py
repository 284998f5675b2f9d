"""The e2e suite's target, picked by E2E_TARGET, or one line saying why the tests cannot run.

- `kind` (the default; `make e2e`): the kind stack. Whether it can run is checked once, when
  this conftest is imported (tests.e2e.preflight: the tools, a Docker engine, the kind
  cluster, the deployed kind stack).
- `local` (`make e2e-local`): the platform on this machine, brought up by the session with
  `make up` in a LOCAL_DIR of its own and taken down at its end (tests.e2e.local_target).

With a gap, every test under tests/e2e is skipped with that line as the reason, so `make test`
(plain `pytest`) collects and reports them as skipped. `make e2e` and `make e2e-local` set
E2E_REQUIRED=1: the same line then fails them, so a job meant to run them can never pass on
skips.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

# The deploy pod is built from the DAG by the platform library; Airflow reads AIRFLOW_HOME
# once, on first import, so a throwaway one is set before anything imports Airflow.
if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)

import pytest  # noqa: E402

from infra.kind import kind_platform  # noqa: E402
from tests.e2e import preflight  # noqa: E402
from tests.e2e.target import Target  # noqa: E402

E2E_DIR = Path(__file__).resolve().parent
TARGETS = ("kind", "local")
TARGET = os.environ.get("E2E_TARGET") or "kind"
REQUIRED = os.environ.get("E2E_REQUIRED") == "1"
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")

log = logging.getLogger("e2e")


def _blocker() -> str | None:
    if TARGET not in TARGETS:
        return f"E2E_TARGET={TARGET!r}: the e2e targets are {', '.join(TARGETS)}"
    if TARGET == "kind":
        return preflight.result().blocker
    return None  # the local target's own gaps (no PostgreSQL) fail its session fixture


BLOCKER = _blocker()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BLOCKER is None or REQUIRED:
        return
    skip = pytest.mark.skip(reason=BLOCKER)
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _target_is_up() -> None:
    """Reached with a gap only under E2E_REQUIRED=1 (else the tests were skipped)."""
    if BLOCKER is not None:
        pytest.fail(f"E2E_REQUIRED=1 but {BLOCKER}", pytrace=False)


@pytest.fixture(scope="session")
def session_id() -> str:
    """Names of this session's model, experiment and DAG runs: unique on a reused cluster."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


@pytest.fixture(scope="session")
def target(session_id: str) -> Iterator[Target]:
    saved = {key: os.environ.get(key) for key in MLFLOW_ENV}
    try:
        if TARGET == "kind":
            from tests.e2e.kind_target import KindTarget, connect

            # Task logs and poller logs of the session (collected by CI on failure).
            artifacts = kind_platform.E2E_ARTIFACTS_DIR / session_id
            artifacts.mkdir(parents=True, exist_ok=True)
            log.info("e2e artifacts: %s", artifacts)
            with ExitStack() as stack:
                yield KindTarget(connect(preflight.result().outputs), artifacts, stack)
        else:
            from tests.e2e.local_target import start

            with start() as local:
                log.info("e2e artifacts: %s", local.artifacts)
                yield local
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
