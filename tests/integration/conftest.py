"""The local platform the integration tests run DAGs on: a folder and an MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.targets.local import stop_all_models
from ml_platform.local.mlflow_server import MlflowServer, local_mlflow_server


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MlflowServer]]:
    """One per test module: the registry's state is part of each module's story."""
    local_dir = tmp_path_factory.mktemp("platform")
    with local_mlflow_server(local_dir / "mlflow") as server:
        try:
            yield local_dir, server
        finally:
            stop_all_models(local_dir / "deployer")
