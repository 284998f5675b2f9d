"""Operable unattended: a served model's Prometheus metrics, and a local model server that is
restarted when it dies. Real MLflow server, real model servers behind the real front."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests
from deployer_testkit import FEATURES, LocalDeployer, feature_rows, log_torch_model
from prometheus_client.parser import text_string_to_metric_families

from deployer import processes
from deployer.manifests import SCRAPE_ANNOTATIONS, ServingSpec, deployment_manifest
from deployer.metrics import LATENCY_BUCKETS, METRICS_PATH
from deployer.targets import Revision
from deployer.targets.local import stop_all_models

# Generous on purpose: a restarted server re-imports MLflow and torch and reloads the model
# from the tracking server, on a machine other tests keep busy.
BACK_WITHIN_S = 60.0


def scrape(endpoint: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the endpoint's /metrics, keyed by name and labels."""
    response = requests.get(f"{endpoint}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_total(samples: dict, path: str, status: int) -> float:
    key = ("model_server_requests_total", frozenset({("path", path), ("status", str(status))}))
    return samples.get(key, 0.0)


def predict_payload(rows: int) -> dict:
    frame = feature_rows(rows, seed=5)
    return {"dataframe_split": frame.to_dict(orient="split", index=False)}


def test_a_served_model_exposes_request_counts_latency_and_model_info(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    run_id = log_torch_model()
    deployed = local_deployer("deploy", "--run-id", run_id, "--model-name", model_name)
    assert deployed.code == 0, deployed.stderr
    endpoint = deployed.xcom["endpoint"]  # the front: what a local scraper would use
    before = scrape(endpoint)

    for rows in (1, 2, 3, 4, 5):
        ok = requests.post(f"{endpoint}/invocations", json=predict_payload(rows), timeout=10)
        assert ok.status_code == 200, ok.text
    missing_column = {"dataframe_records": [{FEATURES[0]: 1.0}]}
    bad = requests.post(f"{endpoint}/invocations", json=missing_column, timeout=10)
    assert bad.status_code == 400
    csv = requests.post(
        f"{endpoint}/invocations", data="a\n1", headers={"content-type": "text/csv"}, timeout=10
    )
    assert csv.status_code == 415
    assert requests.get(f"{endpoint}/no-such-page", timeout=10).status_code == 404
    after = scrape(endpoint)

    def delta(path: str, status: int) -> float:
        return requests_total(after, path, status) - requests_total(before, path, status)

    assert delta("/invocations", 200) == 5
    assert delta("/invocations", 400) == 1
    assert delta("/invocations", 415) == 1
    assert delta("other", 404) == 1  # unknown paths share one label value
    assert requests_total(after, "/metrics", 200) >= 1  # the first scrape

    # The latency histogram of /invocations: every configured bucket, cumulative, and as
    # many observations as answered requests, whatever their status.
    path = frozenset({("path", "/invocations")})
    buckets = {
        float(dict(labels)["le"]): value
        for (name, labels), value in after.items()
        if name == "model_server_request_duration_seconds_bucket"
        and dict(labels)["path"] == "/invocations"
    }
    assert sorted(buckets) == [*LATENCY_BUCKETS, float("inf")]
    counts = [buckets[le] for le in sorted(buckets)]
    assert counts == sorted(counts)
    answered = sum(
        value
        for (name, labels), value in after.items()
        if name == "model_server_requests_total" and dict(labels)["path"] == "/invocations"
    )
    assert buckets[float("inf")] == answered
    assert after["model_server_request_duration_seconds_count", path] == answered
    assert after["model_server_request_duration_seconds_sum", path] > 0

    info = {
        dict(labels)["model_version"]: dict(labels)
        for (name, labels), value in after.items()
        if name == "model_server_model_info" and value == 1
    }
    assert info == {
        "1": {
            "model_name": model_name,
            "model_version": "1",
            "model_uri": f"models:/{model_name}/1",
            "run_id": run_id,
        }
    }
    assert after["model_server_ready", frozenset()] == 1
    assert after["model_server_model_load_seconds", frozenset()] > 0
    assert after["process_resident_memory_bytes", frozenset()] > 0


class PollingClient:
    """Predicts through the endpoint every POLL_S in a thread, noting when each answer came."""

    POLL_S = 0.05

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.answers: list[tuple[float, int | None]] = []  # (monotonic time, status or None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        payload = predict_payload(2)
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    status: int | None = session.post(
                        f"{self.endpoint}/invocations", json=payload, timeout=5
                    ).status_code
                except requests.RequestException:
                    status = None
                self.answers.append((time.monotonic(), status))
                self._stop.wait(self.POLL_S)

    def first_ok_after(self, moment: float) -> float | None:
        return next((t for t, status in list(self.answers) if t > moment and status == 200), None)

    @contextmanager
    def running(self) -> Iterator[PollingClient]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)


def serving_child(supervisor_pid: int) -> psutil.Process:
    """The model server process the supervisor runs (its only child)."""
    (child,) = psutil.Process(supervisor_pid).children()
    return child


def gone(process: psutil.Process, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_a_killed_model_server_is_restarted_and_the_endpoint_answers_again(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    deployed = local_deployer("deploy", "--run-id", log_torch_model(), "--model-name", model_name)
    assert deployed.code == 0, deployed.stderr
    endpoint = deployed.xcom["endpoint"]
    server = local_deployer.state(model_name)["server"]
    crashed = serving_child(server["pid"])

    with PollingClient(endpoint).running() as client:
        deadline = time.monotonic() + 30
        while client.first_ok_after(0) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.first_ok_after(0) is not None, client.answers[-3:]
        killed_at = time.monotonic()
        crashed.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
        while client.first_ok_after(killed_at) is None:
            if time.monotonic() - killed_at > BACK_WITHIN_S:
                break
            time.sleep(0.1)
        back_at = client.first_ok_after(killed_at)
    failures = [status for t, status in client.answers if t > killed_at and status != 200]

    assert back_at is not None, f"no answer within {BACK_WITHIN_S}s of the crash: {failures[-3:]}"
    gap = back_at - killed_at
    print(
        f"\nmodel server killed: endpoint answered again after {gap:.1f}s "
        f"({len(failures)} failed requests meanwhile: {sorted(set(failures), key=str)})"
    )
    assert gap < BACK_WITHIN_S
    # Same version, same supervisor (the state file needed no change), a new serving process.
    version = requests.get(f"{endpoint}/version", timeout=5).json()
    assert (version["model_version"], version["ready"]) == ("1", True)
    assert local_deployer.state(model_name)["server"] == server
    restarted = serving_child(server["pid"])
    assert restarted.pid != crashed.pid
    log_text = Path(server["log"]).read_text()
    assert re.search(r"exited with status 137 after \d+s; restarting in 0\.5s", log_text)

    # Stopping the recorded pid stops the server it supervises too.
    stop_all_models(local_deployer.state_dir)
    assert gone(restarted, within_s=30)


CRASHING_SERVER = """
import http.server, sys

class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.server.answered = True

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready)
server.answered = False
while not server.answered:
    server.handle_request()
server.server_close()
sys.exit(3)  # ready once, then a crash
"""


def test_a_server_crashing_again_and_again_is_restarted_with_growing_delays(
    tmp_path: Path,
) -> None:
    port = processes.free_port()
    script = tmp_path / "crashing.py"
    script.write_text(CRASHING_SERVER)
    command = processes.supervised(
        [sys.executable, str(script), str(port)], f"http://127.0.0.1:{port}/ready"
    )
    log_file = tmp_path / "supervisor.log"
    with open(log_file, "w") as out:
        supervisor = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        delays: list[str] = []
        deadline = time.monotonic() + 60
        while len(delays) < 4 and time.monotonic() < deadline and supervisor.poll() is None:
            time.sleep(0.2)
            delays = re.findall(
                r"exited with status 3 .*restarting in ([\d.]+)s", log_file.read_text()
            )
        assert delays[:4] == ["0.5", "1.0", "2.0", "4.0"], log_file.read_text()
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) in (0, 3, 128 + signal.SIGTERM)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()


def test_serving_pods_are_annotated_for_prometheus_on_the_metrics_port() -> None:
    spec = ServingSpec(namespace="ml-serving", image="deployer:dev")
    manifest = deployment_manifest(spec, Revision("churn", "3"))
    template = manifest["spec"]["template"]
    (server,) = template["spec"]["containers"]
    annotations = template["metadata"]["annotations"]

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == METRICS_PATH == "/metrics"
    ports = {port["containerPort"] for port in server["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    # Pod-template annotations: every version's pods carry them, the selector never changes.
    assert (
        deployment_manifest(spec, Revision("churn", "4"))["spec"]["template"]["metadata"][
            "annotations"
        ].items()
        >= SCRAPE_ANNOTATIONS.items()
    )
