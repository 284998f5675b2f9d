"""A dependency that is down (MLflow, the S3 or GCS endpoint) fails the trainer fast, in one
line naming it, within ML_PLATFORM_DEPENDENCY_TIMEOUT; the console script in a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from trainer_helpers import TRAINER_SCRIPT

from ml_dependencies import TIMEOUT_ENV, Bound

# Far above what each case needs with the bound set low, far below MLflow's own default of
# about four minutes: a busy machine cannot make these fail, a lost bound does.
WELL_UNDER_S = 60


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def _answering_503() -> Iterator[tuple[str, list[int]]]:
    """An endpoint answering 503 to every request: its URL and a one-item connection count."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    count, stop = [0], threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            count[0] += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 503 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", count
    finally:
        stop.set()
        thread.join(timeout=10)
        server.close()


def _trainer(tmp_path: Path, bound_s: str, *args: str, **env: str) -> tuple[int, str, float]:
    """(exit code, stderr, seconds) of the console script."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW_CTX_"))}
    base.update({TIMEOUT_ENV: bound_s, **env})
    started = time.monotonic()
    done = subprocess.run(
        [str(TRAINER_SCRIPT), "--xcom-path", str(tmp_path / "xcom.json"), *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert not (tmp_path / "xcom.json").exists()
    return done.returncode, done.stderr, time.monotonic() - started


def _evaluate(tmp_path: Path) -> list[str]:
    # --run-id is looked up first: the first thing evaluate asks MLflow.
    args = ["evaluate", "--model-uri", "models:/churn/1", "--model-name", "churn"]
    return [*args, "--data-uri", str(tmp_path / "prepared"), "--run-id", "0" * 32]


def test_an_unreachable_mlflow_fails_fast_in_one_line_naming_it(tmp_path: Path) -> None:
    url = _closed_port_url()

    code, stderr, took = _trainer(tmp_path, "5", *_evaluate(tmp_path), MLFLOW_TRACKING_URI=url)

    assert code == 1
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last.startswith(f"trainer evaluate: error: MLflow {url}: unreachable: "), stderr
    assert "Connection refused" in last and f"{TIMEOUT_ENV}=5s" in last
    assert took < WELL_UNDER_S


def test_an_unreachable_storage_endpoint_fails_fast_in_one_line_naming_it(
    tmp_path: Path,
) -> None:
    url = _closed_port_url()

    code, stderr, took = _trainer(
        tmp_path,
        "5",
        "validate",
        "--input-uri",
        "s3://datasets/daily/2026-11-21",
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="key",
        AWS_SECRET_ACCESS_KEY="secret",
    )

    assert code == 1
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last.startswith(f"trainer validate: error: storage {url}: unreachable: "), stderr
    assert took < WELL_UNDER_S


def test_an_unreachable_gcs_endpoint_fails_fast_in_one_line_naming_it(tmp_path: Path) -> None:
    url = _closed_port_url()

    code, stderr, took = _trainer(
        tmp_path,
        "3",
        "validate",
        "--input-uri",
        "gs://datasets/daily/2026-11-21",
        STORAGE_EMULATOR_HOST=url,
    )

    assert code == 1
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last == (
        f"trainer validate: error: storage {url}: unreachable: Could not connect to server "
        f"(gave up within {TIMEOUT_ENV}=3s)"
    ), stderr
    assert took < WELL_UNDER_S


def test_the_bound_sets_mlflows_retries(tmp_path: Path) -> None:
    with _answering_503() as (url, connections):
        code, stderr, _ = _trainer(tmp_path, "12", *_evaluate(tmp_path), MLFLOW_TRACKING_URI=url)

    assert code == 1
    assert f"MLflow {url}: unreachable: too many 503 error responses" in stderr.splitlines()[-1]
    assert connections[0] == Bound(12).attempts == 3  # MLflow's default would make 8


def test_the_bound_splits_into_attempts_that_fit_it() -> None:
    for total in (1, 5, 9.9, 10, 12, 25, 120):
        bound = Bound(total)
        worst = bound.attempts * bound.attempt_s + bound.backoff_s
        assert worst <= max(total, 1), (total, worst)
    options = Bound(25).pyarrow_s3_options()
    assert (options["connect_timeout"], options["request_timeout"]) == (7.0, 7.0)
    assert Bound(25).pyarrow_gcs_options() == {"retry_time_limit": timedelta(seconds=25)}


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_bound_is_one_line(tmp_path: Path, value: str) -> None:
    code, stderr, _ = _trainer(tmp_path, value, *_evaluate(tmp_path))
    assert code == 1
    assert stderr.splitlines()[-1] == (
        f"trainer evaluate: error: {TIMEOUT_ENV}={value!r}: expected a number of seconds above 0"
    )
