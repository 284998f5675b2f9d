"""The end-to-end tests of the platform on one machine (`make e2e-local`).

The session fixture brings the platform up with `make up` in a LOCAL_DIR of its own
(.local/e2e-local, on free ports, so a platform a person runs with the defaults is left
alone) and takes it down with `make down` at the end; the data stays there for a look after a
failure. Without ML_PLATFORM_E2E_LOCAL=1 (`make e2e-local` sets it) those tests are skipped, so
`make test` does not start a platform; under `make e2e-local` they fail, with `make up`'s one
line, when PostgreSQL is not installed and cannot be installed here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml_platform.local.airflow_client import AirflowClient
from ml_platform.local.stack import Layout, stop_process

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENABLED = os.environ.get("ML_PLATFORM_E2E_LOCAL") == "1"


def _local_dir() -> Path:
    """Under the repository, unless (as root) PostgreSQL's `postgres` user could not reach it
    there (a checkout under a private home): then under the temp folder."""
    wanted = REPO / ".local" / "e2e-local"
    parents = [p for p in wanted.parents if p.exists()]
    if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in parents):
        return wanted
    return Path(tempfile.gettempdir()) / "ml-platform-e2e-local"


LOCAL_DIR = _local_dir()
E2E_MODULE = "test_local_platform.py"  # the rest of the folder: quick tests of the pieces
UP_TIMEOUT_S = 900  # PostgreSQL's install on a bare machine included
DOWN_TIMEOUT_S = 300

log = logging.getLogger("e2e-local")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="the local platform's e2e tests run with `make e2e-local`")
    for item in items:
        if item.path.parent == HERE and item.path.name == E2E_MODULE:
            item.add_marker(skip)


@dataclass(frozen=True)
class LocalPlatform:
    local_dir: Path
    airflow: AirflowClient
    mlflow_url: str


def _make(target: str, timeout_s: float, *variables: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"LOCAL_DIR={LOCAL_DIR}", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    log.info("make %s: exit %d in %.0fs", target, done.returncode, time.monotonic() - started)
    return done


def _redacted(output: str) -> str:
    """`make up`'s output without the one line that shows the password (by design)."""
    return "\n".join(
        "    login: (redacted)" if line.lstrip().startswith("login:") else line
        for line in output.splitlines()
    )


@pytest.fixture(scope="session")
def platform() -> Iterator[LocalPlatform]:
    if LOCAL_DIR.exists():  # a previous session's platform: stopped, then a fresh start
        _make("down", DOWN_TIMEOUT_S)
        shutil.rmtree(LOCAL_DIR)
    ports = [f"{name}=0" for name in ("AIRFLOW_PORT", "MLFLOW_PORT", "SMTP_PORT", "POSTGRES_PORT")]
    up = _make("up", UP_TIMEOUT_S, *ports)
    log.info("make up's log:\n%s", _redacted(up.stdout + up.stderr)[-4000:])
    try:
        unavailable = [line for line in up.stderr.splitlines() if "PostgreSQL unavailable" in line]
        if unavailable:  # the stack's EXIT_NO_POSTGRES: none here, none can be installed
            # make e2e-local asked for these tests: not running them is a failure, not a skip.
            pytest.fail(unavailable[0], pytrace=False)
        if up.returncode != 0:
            output = _redacted(up.stdout + up.stderr)[-4000:]
            pytest.fail(f"make up failed ({up.returncode}):\n{output}", pytrace=False)
        second = _make("up", 120)  # idempotent: everything already runs
        output = _redacted(second.stdout + second.stderr)
        assert second.returncode == 0, output[-2000:]
        assert "The local platform is already running" in output, output[-2000:]
        # A service that died is started again, and only that one.
        assert stop_process(Layout(LOCAL_DIR), "triggerer")
        again = _make("up", 300)
        output = _redacted(again.stdout + again.stderr)  # Airflow's logging writes to stdout
        assert again.returncode == 0, output[-2000:]
        assert "triggerer started" in output, output[-2000:]
        assert "scheduler already running" in output, output[-2000:]
        client = AirflowClient.for_local_platform(LOCAL_DIR)
        state = json.loads((LOCAL_DIR / "platform" / "state.json").read_text())
        yield LocalPlatform(LOCAL_DIR, client, state["mlflow_url"])
    finally:
        down = _make("down", DOWN_TIMEOUT_S)
        log.info("make down: %s", down.stdout.strip()[-500:])
