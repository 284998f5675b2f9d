"""Deployer test fixtures: a registered-model name per test, and a local state directory whose
model servers are always stopped."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployer_testkit import LocalDeployer

from deployer.targets.local import stop_all_models


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name of this test's own: the MLflow server is shared."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40] + uuid.uuid4().hex[:6]


@pytest.fixture
def local_deployer(
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[LocalDeployer]:
    state_dir = tmp_path / "deployer-state"
    xcom_path = tmp_path / "xcom" / "return.json"
    monkeypatch.setenv("DEPLOYER_TARGET", "local")
    monkeypatch.setenv("DEPLOYER_STATE_DIR", str(state_dir))
    monkeypatch.setenv("TRAINER_XCOM_PATH", str(xcom_path))
    try:
        yield LocalDeployer(state_dir, xcom_path, capsys)
    finally:
        # Every server and front any command started is named in a state file: stop them all.
        stop_all_models(state_dir)
