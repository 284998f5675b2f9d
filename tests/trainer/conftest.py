"""Fixtures for the trainer's tests: small partitions, a prepared split, a CLI runner, S3."""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trainer_helpers import CHURN_SPEC_FILE, GCS_BUCKET, TEST_ROWS, CliResult, unique

from ml_contract import SPEC_ENV, ModelSpec, load_spec
from tests.gcs_emulator import GcsEmulator, gcs_emulator
from trainer.cli import main
from trainer.generate import run_generate
from trainer.preprocess import run_preprocess


@pytest.fixture(scope="session")
def churn_spec() -> ModelSpec:
    return load_spec(CHURN_SPEC_FILE)


@pytest.fixture(autouse=True)
def churn_spec_env(churn_spec: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """The churn spec in ML_MODEL_SPEC, as the pipeline's pods get it; tests may override."""
    monkeypatch.setenv(SPEC_ENV, churn_spec.to_json())
    return churn_spec


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Runs trainer.cli.main in-process; returns the exit code, the XCom JSON and stderr."""

    def run(*args: str) -> CliResult:
        xcom = tmp_path / f"xcom-{uuid.uuid4().hex}" / "return.json"
        capsys.readouterr()
        code = main(["--xcom-path", str(xcom), *args])
        captured = capsys.readouterr()
        result = json.loads(xcom.read_text()) if xcom.exists() else None
        return CliResult(code, result, captured.err)

    return run


@pytest.fixture(scope="session")
def raw_partition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated partition, shared read-only: copy it before changing anything."""
    folder = tmp_path_factory.mktemp("raw") / "daily" / "2026-11-21"
    run_generate("2026-11-21", str(folder), TEST_ROWS, 0.0)
    return folder


@pytest.fixture(scope="session")
def prepared(
    raw_partition: Path, tmp_path_factory: pytest.TempPathFactory, churn_spec: ModelSpec
) -> Path:
    """raw_partition after preprocess (seed 42), shared read-only."""
    folder = tmp_path_factory.mktemp("prepared") / "2026-11-21"
    run_preprocess(str(raw_partition), str(folder), 42, 0.15, 0.15, churn_spec)
    return folder


@pytest.fixture
def prepared_copy(prepared: Path, tmp_path: Path) -> Path:
    """A private copy of `prepared` that a test may change."""
    folder = tmp_path / "prepared"
    shutil.copytree(prepared, folder)
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto S3 server on port {port} did not start") from None
            time.sleep(0.1)


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's S3 server on 127.0.0.1, with the env pointing s3:// at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_listening(port, timeout_s=15)
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        bucket = unique("datasets")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        yield bucket
    finally:
        server.stop()


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    """A GCS emulator on 127.0.0.1 with the datasets bucket, the env pointing gs:// at it."""
    from trainer import storage

    with gcs_emulator() as emulator:
        emulator.create_bucket(GCS_BUCKET)
        monkeypatch.setenv(storage.GCS_EMULATOR_ENV, emulator.url)
        yield emulator


@pytest.fixture(params=["s3", "gs"])
def object_store(request: pytest.FixtureRequest) -> str:
    """The root URI of a bucket on each object store the trainer speaks (moto's S3 server,
    a GCS emulator), for the tests that hold for both alike."""
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}"
    request.getfixturevalue("gcs")
    return f"gs://{GCS_BUCKET}"
