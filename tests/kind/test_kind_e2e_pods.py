"""The pods the e2e tests start beside the stack, built offline and checked against the
Kubernetes schema and the platform's rules, so a cluster is not the first to see them.

- the failing deploy: the training DAG's own deploy pod (platform library and
  pod_mutation_hook), with the XCom sidecar removed and another run id;
- the serving poller: a client of the model's Service in the training namespace.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

# Building the deploy pod parses the DAGs: Airflow reads AIRFLOW_HOME once, on first import.
if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)

import json  # noqa: E402

import kubernetes_validate  # noqa: E402
import pytest  # noqa: E402

from infra.kind import kind_platform  # noqa: E402
from ml_platform.model_specs import PLATFORM_TEAM  # noqa: E402
from ml_platform.serving_identity import serving_identity  # noqa: E402
from tests.e2e.serving import (  # noqa: E402
    E2E_LABEL,
    POLLER_SCRIPT,
    deploy_pod,
    failed_requests,
    poll_records,
    poller_pod,
)
from tests.pod_security_profile import restricted_violations  # noqa: E402

SCHEMA_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def platform():
    return kind_platform.platform_document()


@pytest.fixture(scope="module")
def failing_deploy() -> dict:
    return deploy_pod(
        "e2e-failing-deploy-x", "run123", "e2e-churn-x", 300, str(kind_platform.DAGS_DIR)
    )


def test_the_failing_deploy_is_the_dags_deploy_pod_with_another_run(failing_deploy, platform):
    kubernetes_validate.validate(failing_deploy, SCHEMA_VERSION, strict=True)
    assert restricted_violations(failing_deploy) == []  # the training namespace enforces it
    spec = failing_deploy["spec"]
    (container,) = spec["containers"]  # no XCom sidecar: nobody would stop it
    assert container["image"] == platform.images.ref("deployer")
    assert container["args"] == [
        "deploy",
        "--run-id",
        "run123",
        "--model-name",
        "e2e-churn-x",
        "--timeout",
        "300",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DEPLOYER_NAMESPACE"] == platform.namespaces["serving"]
    assert env["DEPLOYER_IMAGE"] == platform.images.ref("deployer")
    # The e2e runs the platform's pipeline: its spec's model's serving login, by its name.
    assert env["DEPLOYER_TEAM"] == PLATFORM_TEAM
    login, secret = serving_identity(env["DEPLOYER_MODEL"])
    assert (env["DEPLOYER_SERVING_USER"], env["DEPLOYER_ENV_SECRET"]) == (login, secret)
    assert env["MLFLOW_TRACKING_URI"] == platform.mlflow_tracking_uri
    assert not any(name.startswith("AIRFLOW_") for name in env)
    assert spec["serviceAccountName"] == platform.service_accounts["deployer"]
    assert spec["restartPolicy"] == "Never"
    assert failing_deploy["metadata"]["namespace"] == platform.namespaces["training"]
    labels = failing_deploy["metadata"]["labels"]
    # The NetworkPolicy that lets the deploy task reach the Kubernetes API selects this label.
    assert labels["ml-platform/image"] == "deployer"
    assert labels[E2E_LABEL] == "failing-deploy"
    secrets = {ref["secretRef"]["name"] for ref in container.get("envFrom", [])}
    # The team's MLflow login only: the deployer reads no data.
    assert secrets == {platform.team_identity(PLATFORM_TEAM).mlflow_secret}


def test_the_failing_deploy_stays_off_the_gpu_pool(failing_deploy, platform):
    terms = failing_deploy["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    wanted = {
        (expression["key"], value)
        for term in terms
        for expression in term["matchExpressions"]
        for value in expression["values"]
    }
    (cpu_pool,) = [pool for pool in platform.pools if not pool.has_gpus]
    assert ("ml-platform/pool", cpu_pool.name) in wanted
    assert not failing_deploy["spec"].get("tolerations")


def test_the_poller_is_a_valid_restricted_pod(platform):
    pod = poller_pod(
        "e2e-poller-x",
        platform.namespaces["training"],
        platform.images.ref("deployer"),
        platform.images.pull_policy,
        platform.service_accounts["training"],
        "http://model-x.ml-serving.svc.cluster.local:80/invocations",
        {"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}},
        60,
    )
    kubernetes_validate.validate(pod, SCHEMA_VERSION, strict=True)
    assert restricted_violations(pod) == []
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-c", POLLER_SCRIPT]
    compile(POLLER_SCRIPT, "poller", "exec")
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_poll_records_count_every_answer_that_is_not_a_prediction_per_row():
    log = "\n".join(
        json.dumps(record)
        for record in [
            {"t": 1.0, "status": 200, "n": 5, "error": None},
            {"t": 1.2, "status": 500, "n": None, "error": "PREDICTION_FAILED"},
            {"t": 1.4, "status": None, "n": None, "error": "URLError: refused"},
            {"t": 1.6, "status": 200, "n": 4, "error": None},
            {"done": True},
        ]
    )
    records = poll_records("Defaulted container\n" + log)
    assert [r["t"] for r in records] == [1.0, 1.2, 1.4, 1.6]
    assert [r["t"] for r in failed_requests(records, rows=5)] == [1.2, 1.4, 1.6]
