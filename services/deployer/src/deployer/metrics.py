"""The model server's Prometheus metrics, served at /metrics on the serving port.

- `model_server_requests_total{path, status}`: every answered request;
- `model_server_request_duration_seconds{path}`: latency from the request reaching the app to
  the last byte of the answer handed to the server;
- `model_server_model_info{model_name, model_version, model_uri, run_id}`, plus
  `model_server_ready` and `model_server_model_load_seconds`;
- the process, platform and GC collectors of prometheus-client.

One registry per app, not prometheus-client's global one: the tests build several apps in one
process, and each would collide with the previous one's metric names there. Counters live in
the process and start from zero when it restarts, which Prometheus' rate() treats as a reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from deployer.server import ModelSlot

METRICS_PATH = "/metrics"
# Paths no route answers (scanners, typos) share one label value: the series stay bounded.
OTHER_PATH = "other"
# Predictions of the platform's models take from a fraction of a millisecond to tens of
# milliseconds; prometheus-client's default buckets start at 5 ms and would lump them together.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class _ModelCollector(Collector):
    """What the process serves, read from the model slot at each scrape."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot

    def collect(self) -> Iterator[Metric]:
        identity = self.slot.identity
        yield InfoMetricFamily(
            "model_server_model",
            "The model this process serves (run_id is empty until it is loaded)",
            value={
                "model_name": identity.model_name or "",
                "model_version": identity.model_version or "",
                "model_uri": identity.model_uri,
                "run_id": self.slot.run_id or "",
            },
        )
        ready = self.slot.loaded.is_set()
        yield GaugeMetricFamily(
            "model_server_ready", "1 once the model is loaded and answers", value=float(ready)
        )
        if self.slot.load_seconds is not None:
            yield GaugeMetricFamily(
                "model_server_model_load_seconds",
                "How long loading and self-checking the model took",
                value=self.slot.load_seconds,
            )


class ServerMetrics:
    """The registry of one model server and the request metrics it records."""

    def __init__(self, slot: ModelSlot, paths: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_ModelCollector(slot))
        self.requests = Counter(
            "model_server_requests",
            "Requests answered, by route path and HTTP status",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_server_request_duration_seconds",
            "Time from a request reaching the app to its answer being sent, by route path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._paths = frozenset(paths)
        # labels() takes a lock and builds a key on every call: keep the children instead.
        self._counters: dict[tuple[str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        if path not in self._paths:
            path = OTHER_PATH
        counter = self._counters.get((path, status))
        if counter is None:
            counter = self._counters[path, status] = self.requests.labels(path, str(status))
        counter.inc()
        histogram = self._histograms.get(path)
        if histogram is None:
            histogram = self._histograms[path] = self.latency.labels(path)
        histogram.observe(seconds)

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (OpenMetrics or text)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def instrument(app: ASGIApp, metrics: ServerMetrics) -> ASGIApp:
    """`app` counting and timing every HTTP request into `metrics`.

    Plain ASGI rather than Starlette's BaseHTTPMiddleware, which runs each request in a task
    group and costs more than a prediction of a small model.
    """

    async def instrumented(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            metrics.observe(scope["path"], status, time.perf_counter() - started)

    return instrumented
