"""The live endpoint against the spec's SLO: figures from real Prometheus text, written by
prometheus_client's own registry with the model server's metric names and buckets."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from trainer_helpers import unique

from deployer.metrics import ServerMetrics
from deployer.server import ModelIdentity, ModelSlot
from ml_contract import ModelSpec, Slo
from ml_contract.serving import DEPLOYED_ENDPOINT_TAG
from trainer.errors import TrainerError
from trainer.monitor import run_monitor
from trainer.monitor_slo import (
    breaches,
    champion_slo,
    check_slo,
    histogram_quantile,
    parse_metrics,
    window_figures,
)


class FakeServer:
    """A model server's request metrics, recorded and rendered by the deployer's own
    ServerMetrics: the monitor reads the names and buckets the server really writes."""

    def __init__(self) -> None:
        slot = ModelSlot(ModelIdentity.from_uri("models:/churn/3"))
        self.metrics = ServerMetrics(slot, ["/invocations", "/ready"])

    def answer(self, seconds: float, status: int = 200, path: str = "/invocations") -> None:
        self.metrics.observe(path, status, seconds)

    def text(self) -> str:
        return self.metrics.render("text/plain")[0].decode()


def _window(before: FakeServer, after: FakeServer, seconds: float = 10.0) -> dict:
    return window_figures(parse_metrics(before.text(), 0.0), parse_metrics(after.text(), seconds))


def test_figures_of_a_window_count_only_what_happened_in_it() -> None:
    server = FakeServer()
    for _ in range(50):  # before the window: must not count
        server.answer(2.0, 500)
    first = parse_metrics(server.text(), at=100.0)
    for _ in range(97):
        server.answer(0.003)
    for _ in range(3):
        server.answer(0.3, 503)
    server.answer(0.0001, 400)  # a client error is not the server's
    for _ in range(20):
        server.answer(5.0, 200, path="/ready")  # probes are not traffic
    second = parse_metrics(server.text(), at=120.0)

    figures = window_figures(first, second)
    assert figures["requests"] == 101
    assert figures["errors"] == 3
    assert figures["error_rate"] == pytest.approx(3 / 101)
    assert figures["throughput_rps"] == pytest.approx(101 / 20)
    assert figures["window_s"] == 20.0
    assert figures["counters_reset"] is False
    # Rank 0.99 * 101 = 99.99 falls in the (0.25, 0.5] bucket holding the 3 slow ones (98 at
    # or below 0.25 s): 0.25 + 0.25 * (99.99 - 98) / 3.
    assert figures["p99_latency_ms"] == pytest.approx((0.25 + 0.25 * 1.99 / 3) * 1000)


def test_p99_is_prometheus_histogram_quantile() -> None:
    buckets = {0.001: 0.0, 0.005: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.001 + 0.004 * 0.99)
    assert histogram_quantile(0.5, {0.01: 10.0, math.inf: 10.0}) == pytest.approx(0.005)
    # Beyond the highest finite bound: that bound, as Prometheus answers.
    assert histogram_quantile(0.99, {0.01: 1.0, 10.0: 1.0, math.inf: 100.0}) == 10.0
    assert histogram_quantile(0.99, {0.01: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {}) is None


def test_a_restarted_server_counts_from_zero() -> None:
    old = FakeServer()
    for _ in range(500):
        old.answer(0.001)
    new = FakeServer()  # fewer requests than before: a plain delta would be < 0
    for _ in range(10):
        new.answer(0.02, 500)
    figures = _window(old, new)
    assert figures["counters_reset"] is True
    assert (figures["requests"], figures["errors"]) == (10, 10)
    assert 10 < figures["p99_latency_ms"] <= 25
    # A new process start time says so too, with more requests than before.
    before = parse_metrics(new.text(), 0.0)
    assert before.started is not None  # process_start_time_seconds, as the server exports it
    for _ in range(5):
        new.answer(0.02, 500)
    after = dataclasses.replace(parse_metrics(new.text(), 10.0), started=before.started + 1)
    restarted = window_figures(before, after)
    assert (restarted["counters_reset"], restarted["requests"]) == (True, 15)


def test_a_quiet_window_judges_throughput_only() -> None:
    server = FakeServer()
    server.answer(9.0, 500)
    figures = _window(server, server)
    assert figures["requests"] == 0
    assert figures["p99_latency_ms"] is None and figures["error_rate"] is None
    slo = Slo(p99_latency_ms=1, max_error_rate=0.0)
    assert breaches(figures, slo) == []
    assert breaches(figures, Slo(min_throughput_rps=0.5)) == ["throughput 0 rps < 0.5 rps"]


def test_each_objective_missed_is_one_line() -> None:
    before, after = FakeServer(), FakeServer()
    for _ in range(8):
        after.answer(0.004)
    for _ in range(2):
        after.answer(0.004, 500)
    figures = _window(before, after, seconds=10.0)
    tight = Slo(p99_latency_ms=0.001, max_error_rate=0.1, min_throughput_rps=2.0)
    found = breaches(figures, tight)
    assert len(found) == 3, found
    assert found[0].startswith("p99 latency 4.") and found[0].endswith(" ms > 0.001 ms")
    assert found[1] == "error rate 20.00% > 10.00% (2 of 10 answered 5xx)"
    assert found[2] == "throughput 1 rps < 2 rps"
    loose = Slo(p99_latency_ms=5.0, max_error_rate=0.2, min_throughput_rps=1.0)
    assert breaches(figures, loose) == []


def test_text_that_is_not_prometheus_is_an_error() -> None:
    with pytest.raises(TrainerError, match="not Prometheus text"):
        parse_metrics('model_server_requests_total{path="/invocations" 1\n', 0.0)


@contextmanager
def _serving(server: FakeServer, status: int = 200) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the base class's name)
            body = server.text().encode() if self.path == "/metrics" else b""
            self.send_response(status if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def test_check_slo_scrapes_the_endpoint_before_and_after_the_window() -> None:
    server = FakeServer()
    server.answer(1.0, 500)  # before the window

    def traffic_during_the_window(seconds: float) -> None:
        assert seconds == 90.0  # window_minutes, not slept: the traffic is made here
        for _ in range(30):
            server.answer(0.002)

    slo = Slo(p99_latency_ms=0.001, max_error_rate=0.01, window_minutes=1.5, on_breach="rollback")
    with _serving(server) as endpoint:
        result = check_slo(endpoint, slo, sleep=traffic_during_the_window)
    assert result["checked"] and result["breached"]
    assert (result["requests"], result["errors"], result["error_rate"]) == (30, 0, 0.0)
    assert result["breaches"] == [f"p99 latency {result['p99_latency_ms']:.4g} ms > 0.001 ms"]
    assert result["objectives"] == {
        "p99_latency_ms": 0.001,
        "max_error_rate": 0.01,
        "on_breach": "rollback",
    }
    assert result["endpoint"] == endpoint


def test_an_endpoint_that_does_not_answer_breaches_the_slo() -> None:
    with _serving(FakeServer(), status=503) as endpoint:
        result = check_slo(endpoint, Slo(p99_latency_ms=100), sleep=lambda s: None)
    assert result["breached"] is True
    assert result["breaches"] == [f"the endpoint did not answer: {endpoint}/metrics: HTTP 503"]


def test_the_champion_is_watched_at_the_endpoint_its_deploy_recorded() -> None:
    """The deployer records where the champion serves in the contract's tag."""
    slo = Slo(max_error_rate=0.5)
    with _serving(FakeServer()) as endpoint:
        tag = ModelVersionTag(DEPLOYED_ENDPOINT_TAG, endpoint)
        result = champion_slo(ModelVersion("m", "3", 0, tags=[tag]), slo, sleep=lambda s: None)
    assert result["checked"] is True and result["endpoint"] == endpoint
    assert champion_slo(ModelVersion("m", "2", 0), slo) == {
        "checked": False,
        "breached": False,
        "reason": "champion v2 has no deployed_endpoint tag: not deployed here",
    }


@pytest.mark.parametrize("reference", [False, True], ids=["no-reference", "reference-given"])
def test_without_a_champion_the_slo_is_reported_unchecked(
    mlflow_uri: str, churn_spec: ModelSpec, raw_partition: Path, reference: bool
) -> None:
    """With no champion there is no endpoint to watch: an SLO in the spec is reported as not
    checked, whether the monitor stops early (no reference) or reports drift first."""
    model_name = unique("no-champion")
    partition = str(raw_partition)

    def slo_of(spec: ModelSpec) -> dict | None:
        report = run_monitor(
            partition, model_name, partition if reference else None, spec, None, 0.2, None
        )
        assert report["champion"] is None
        return report["slo"]

    with_slo = dataclasses.replace(churn_spec, slo=Slo(p99_latency_ms=50.0))
    assert slo_of(with_slo) == {
        "checked": False,
        "breached": False,
        "reason": f"model {model_name!r} has no champion: no endpoint to hold to the SLO",
    }
    assert slo_of(churn_spec) is None
