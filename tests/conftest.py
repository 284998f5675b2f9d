"""Fixtures shared by every test: a real MLflow server on 127.0.0.1 for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ml_platform.local.mlflow_server import MlflowServer, local_mlflow_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One tracking server + registry for the whole session (SQLite, local artifact store)."""
    with local_mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def mlflow_uri(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points this test's MLflow client (and any subprocess it starts) at the server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    return mlflow_server.url


@pytest.fixture(autouse=True)
def _no_ambient_airflow_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide themselves whether a task runs 'inside Airflow'."""
    for key in list(os.environ):
        if key.startswith("AIRFLOW_CTX_"):
            monkeypatch.delenv(key)
