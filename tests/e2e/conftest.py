"""The kind e2e tests: they run against the kind stack, or are skipped with one line saying why.

Whether they can run is checked once, when this conftest is imported (tests.e2e.preflight:
the tools, a Docker engine, the kind cluster, the deployed kind stack). With a gap, every test
under tests/e2e is skipped with that line as the reason, so `make test` (plain `pytest`)
collects and reports them as skipped. `make e2e` sets E2E_REQUIRED=1: the same line then
fails them, so a job meant to run them can never pass on skips.

Fixtures reach the stack the way a user does: the kubeconfig context of the kind stack, the
admin credentials from the stack's outputs and from the Secrets the pods use, and
`kubectl port-forward` to the Services of Airflow, MLflow and the object store.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
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
from ml_platform.local.airflow_client import AirflowClient  # noqa: E402
from ml_platform.model_specs import PLATFORM_TEAM  # noqa: E402
from tests.e2e import preflight  # noqa: E402
from tests.e2e.stack import Kind, Mlflow, Store  # noqa: E402

E2E_DIR = Path(__file__).resolve().parent
REQUIRED = os.environ.get("E2E_REQUIRED") == "1"
PREFLIGHT = preflight.result()

log = logging.getLogger("e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PREFLIGHT.blocker is None or REQUIRED:
        return
    skip = pytest.mark.skip(reason=PREFLIGHT.blocker)
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up() -> None:
    """Reached with a gap only under E2E_REQUIRED=1 (else the tests were skipped)."""
    if PREFLIGHT.blocker is not None:
        pytest.fail(f"E2E_REQUIRED=1 but {PREFLIGHT.blocker}", pytrace=False)


@pytest.fixture(scope="session")
def kind() -> Kind:
    from kubernetes import client, config

    context = kind_platform.kube_context()
    api = config.new_client_from_config(context=context)
    return Kind(
        context=context,
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        platform=kind_platform.platform_document(),
        stack=kind_platform.stack_config(),
        services=kind_platform.services(),
        outputs=PREFLIGHT.outputs,
    )


@pytest.fixture(scope="session")
def session_id() -> str:
    """Names of this session's model, experiment and DAG runs: unique on a reused cluster."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


@pytest.fixture(scope="session")
def artifacts(session_id: str) -> Path:
    """Where the session leaves task logs and poller logs (collected by CI on failure)."""
    path = kind_platform.E2E_ARTIFACTS_DIR / session_id
    path.mkdir(parents=True, exist_ok=True)
    log.info("e2e artifacts: %s", path)
    return path


@pytest.fixture(scope="session")
def airflow(kind: Kind) -> Iterator[AirflowClient]:
    with kind.port_forward("airflow") as forward:
        # The forward's URL may change (a restarted port-forward): asked at every request.
        yield AirflowClient(
            lambda: forward.url,
            kind.outputs["airflow_admin_user"],
            kind.outputs["airflow_admin_password"],
        )


@pytest.fixture(scope="session")
def cluster_mlflow(kind: Kind) -> Iterator[Mlflow]:
    # The admin sees every team's runs and models (the pods get their team's login only).
    credentials = {
        "MLFLOW_TRACKING_USERNAME": kind.outputs["mlflow_admin_user"],
        "MLFLOW_TRACKING_PASSWORD": kind.outputs["mlflow_admin_password"],
    }
    saved = {key: os.environ.get(key) for key in [*credentials, "MLFLOW_TRACKING_URI"]}
    with kind.port_forward("mlflow") as forward:
        yield Mlflow(forward, credentials)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def store(kind: Kind) -> Iterator[Store]:
    # The platform team's key: the e2e data lands in its daily/ folder.
    credentials = kind.secret("training", kind.platform.teams[PLATFORM_TEAM].storage_secret)
    with kind.port_forward("storage") as forward:
        yield Store(forward, credentials)
