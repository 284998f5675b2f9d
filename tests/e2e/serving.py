"""The model server as the e2e tests observe it, and the pods they run beside it.

- `serving_state`: the Deployment services/deployer manages for a model (its generation, the
  model version of its pod template, available replicas).
- `ask_server`: the Service's `/version` and `/invocations`, through a port-forward.
- `poller_pod`: a client inside the cluster that posts a prediction request to the Service
  every few hundred milliseconds and prints one JSON line per answer. A port-forward sticks to
  the one pod it started with; an in-cluster client goes through the Service like any other
  client, so it sees exactly the endpoints the rollout gives it. It runs in the training
  namespace, whose NetworkPolicy lets pods reach the model servers, on the deployer image
  (Python is all it needs; the image is already on the nodes).
- `deploy_pod`: the pod the training DAG's `deploy` task launches, built from the DAG by the
  platform library (service account, secrets, environment, labels, NetworkPolicy label,
  security context, CPU pool placement, after the pod_mutation_hook), with another run id.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30
DAG_ID = "ml_training_pipeline"
DEPLOY_TASK = "deploy"
POLL_INTERVAL_S = 0.25
POLL_REQUEST_TIMEOUT_S = 5
E2E_LABEL = "ml-platform/e2e"

# Runs in the deployer image; standard library only. One JSON line per request:
# {"t": epoch seconds, "status": HTTP status or null, "n": predictions or null, "error": ...}
POLLER_SCRIPT = """
import json, os, time, urllib.error, urllib.request
url = os.environ["POLL_URL"]
payload = os.environ["POLL_PAYLOAD"].encode()
interval = float(os.environ["POLL_INTERVAL_S"])
timeout = float(os.environ["POLL_REQUEST_TIMEOUT_S"])
deadline = time.time() + float(os.environ["POLL_SECONDS"])
while time.time() < deadline:
    started = time.time()
    record = {"t": round(started, 3), "status": None, "n": None, "error": None}
    request = urllib.request.Request(
        url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            record["status"] = response.status
            record["n"] = len(json.loads(response.read()).get("predictions", []))
    except urllib.error.HTTPError as exc:
        record["status"] = exc.code
        record["error"] = exc.read()[:300].decode(errors="replace")
    except Exception as exc:
        record["error"] = (type(exc).__name__ + ": " + str(exc))[:300]
    print(json.dumps(record), flush=True)
    time.sleep(max(0.0, interval - (time.time() - started)))
print(json.dumps({"done": True}), flush=True)
"""


@dataclass(frozen=True)
class ServingState:
    generation: int
    version: str | None  # the model version of the pod template
    available: int


def serving_state(apps: Any, namespace: str, deployment: str, version_label: str) -> ServingState:
    found = apps.read_namespaced_deployment(deployment, namespace, _request_timeout=30)
    labels = found.spec.template.metadata.labels or {}
    available = (found.status.available_replicas or 0) if found.status else 0
    return ServingState(found.metadata.generation, labels.get(version_label), available)


def ask_server(url: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """(`/version`'s answer, the predictions `/invocations` returns for `payload`)."""
    version = requests.get(f"{url}/version", timeout=REQUEST_TIMEOUT_S)
    version.raise_for_status()
    answer = requests.post(f"{url}/invocations", json=payload, timeout=REQUEST_TIMEOUT_S)
    if answer.status_code != 200:
        raise AssertionError(f"POST {url}/invocations: HTTP {answer.status_code} {answer.text}")
    return version.json(), answer.json()["predictions"]


def _restricted_container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def poller_pod(
    name: str,
    namespace: str,
    image: str,
    pull_policy: str,
    service_account: str,
    url: str,
    payload: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    env = {
        "POLL_URL": url,
        "POLL_PAYLOAD": json.dumps(payload),
        "POLL_SECONDS": str(seconds),
        "POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        "POLL_REQUEST_TIMEOUT_S": str(POLL_REQUEST_TIMEOUT_S),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {E2E_LABEL: "poller"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "poller",
                    "image": image,
                    "imagePullPolicy": pull_policy,
                    "command": ["python", "-c", POLLER_SCRIPT],
                    "env": [{"name": key, "value": value} for key, value in env.items()],
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "250m", "memory": "128Mi"},
                    },
                    "securityContext": _restricted_container_security(),
                }
            ],
        },
    }


def poll_records(log_text: str) -> list[dict[str, Any]]:
    return [
        record
        for line in log_text.splitlines()
        if line.startswith("{")
        for record in [json.loads(line)]
        if "t" in record
    ]


def failed_requests(records: list[dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    """Answers that were not one prediction per row of the request, errors included."""
    return [record for record in records if record["status"] != 200 or record["n"] != rows]


def deploy_pod(
    name: str, run_id: str, model_name: str, deploy_timeout_s: int, dags_folder: str
) -> dict[str, Any]:
    """The training DAG's deploy pod, deploying `run_id`'s model instead of the best run's."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults

    from ml_platform import inspection
    from ml_platform.policies import pod_mutation_hook, task_policy

    bag = DagBag(dag_folder=dags_folder)
    if DAG_ID not in bag.dags:
        raise AssertionError(f"{DAG_ID} not parsed: {bag.import_errors}")
    task_policy(bag.dags[DAG_ID].get_task(DEPLOY_TASK))  # the team's identity, as on the cluster
    operator = inspection.concrete_operator(bag.dags[DAG_ID], DEPLOY_TASK)
    pod = inspection.build_pod(operator)
    pod_mutation_hook(pod)
    body = ApiClient().sanitize_for_serialization(pod)
    spec = body["spec"]
    # The XCom sidecar waits for Airflow to read the result and stop it: nobody does here.
    spec["containers"] = [
        c for c in spec["containers"] if c["name"] != PodDefaults.SIDECAR_CONTAINER_NAME
    ]
    (container,) = [c for c in spec["containers"] if c["name"] == operator.base_container_name]
    container["args"] = [
        "deploy",
        "--run-id",
        run_id,
        "--model-name",
        model_name,
        "--timeout",
        str(deploy_timeout_s),
    ]
    # Airflow renders these per task instance; outside Airflow the deployer does without.
    container["env"] = [e for e in container.get("env", []) if not e["name"].startswith("AIRFLOW_")]
    templated = [e["name"] for e in container["env"] if "{{" in str(e.get("value", ""))]
    if templated:
        raise AssertionError(f"the deploy pod has templated env the test cannot fill: {templated}")
    spec["restartPolicy"] = "Never"
    metadata = body["metadata"]
    metadata["name"] = name
    metadata.pop("generateName", None)
    metadata["labels"] = {**(metadata.get("labels") or {}), E2E_LABEL: "failing-deploy"}
    return body


def wait_for_pod_end(core: Any, namespace: str, name: str, timeout_s: float) -> str:
    """The pod's final phase (Succeeded or Failed); fails at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        pod = core.read_namespaced_pod(name, namespace, _request_timeout=30)
        phase = pod.status.phase
        if phase in ("Succeeded", "Failed"):
            return phase
        waiting = [
            s.state.waiting.reason
            for s in pod.status.container_statuses or []
            if s.state and s.state.waiting and s.state.waiting.reason
        ]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pod {namespace}/{name} still {phase} after {timeout_s:.0f}s (waiting: {waiting})"
            )
        time.sleep(3)


def wait_for_log(
    core: Any, namespace: str, name: str, ready: Any, timeout_s: float, what: str
) -> str:
    """The pod's log once `ready(log_text)` holds; fails at the deadline with the log's tail."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace, _request_timeout=30)
        if pod.status.phase in ("Running", "Succeeded", "Failed"):
            text = core.read_namespaced_pod_log(name, namespace, _request_timeout=30)
            if ready(text):
                return text
        time.sleep(2)
    tail = "\n".join(text.splitlines()[-20:])
    raise AssertionError(
        f"pod {namespace}/{name}: {what} not seen within {timeout_s:.0f}s:\n{tail}"
    )
