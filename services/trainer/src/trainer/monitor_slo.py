"""The live endpoint against the spec's SLO: p99 latency, error rate and throughput.

The model server counts and times every request in Prometheus metrics at /metrics
(`model_server_requests_total{path,status}`, `model_server_request_duration_seconds{path}`).
Its counters run from the process's start, so one scrape says nothing about now: the monitor
scrapes twice, `window_minutes` apart, and reads the window from the differences, as
Prometheus' rate() and histogram_quantile() would. Only `/invocations` counts (probes and
scrapes are not traffic). The endpoint is where the deployer says the champion serves: the
version's `deployed_endpoint` tag.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from ml_contract import Slo
from ml_contract.serving import DEPLOYED_ENDPOINT_TAG
from trainer.errors import TrainerError

log = logging.getLogger(__name__)

PREDICT_PATH = "/invocations"
REQUESTS = "model_server_requests_total"
LATENCY = "model_server_request_duration_seconds"
START_TIME = "process_start_time_seconds"
SCRAPE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Scrape:
    """What one /metrics answer says about /invocations, since the server process started."""

    at: float  # time.monotonic() when it was read
    by_status: dict[str, float] = field(default_factory=dict)  # answered requests per status
    buckets: dict[float, float] = field(default_factory=dict)  # cumulative count per upper bound
    started: float | None = None  # the process's start time: a new one resets the counters
    model_version: str | None = None

    @property
    def answered(self) -> float:
        return sum(self.by_status.values())


def parse_metrics(text: str, at: float) -> Scrape:
    """The /invocations figures of a Prometheus text exposition (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    by_status: dict[str, float] = {}
    buckets: dict[float, float] = {}
    started = version = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                path = sample.labels.get("path")
                if sample.name == REQUESTS and path == PREDICT_PATH:
                    by_status[sample.labels["status"]] = sample.value
                elif sample.name == f"{LATENCY}_bucket" and path == PREDICT_PATH:
                    buckets[float(sample.labels["le"])] = sample.value
                elif sample.name == START_TIME:
                    started = sample.value
                elif sample.name == "model_server_model_info":
                    version = sample.labels.get("model_version") or None
    except (ValueError, KeyError, IndexError) as exc:  # the parser's own errors are these
        raise TrainerError(f"/metrics is not Prometheus text: {exc}") from None
    return Scrape(at, by_status, buckets, started, version)


class EndpointDown(TrainerError):
    """The endpoint did not answer /metrics: an endpoint that is down breaches any SLO."""


def scrape(endpoint: str, clock: Callable[[], float] = time.monotonic) -> Scrape:
    """One bounded read of `endpoint`/metrics."""
    url = f"{endpoint.rstrip('/')}/metrics"
    try:
        response = requests.get(url, timeout=SCRAPE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise EndpointDown(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise EndpointDown(f"{url}: HTTP {response.status_code}")
    return parse_metrics(response.text, clock())


def _reset(before: Scrape, after: Scrape) -> bool:
    """A new process between the scrapes (a restart, a new version): counters start again."""
    if before.started is not None and after.started != before.started:
        return True
    if after.answered < before.answered:
        return True
    return any(after.buckets.get(le, 0.0) < n for le, n in before.buckets.items())


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets (upper bound -> count): linear
    within the bucket the rank falls in, from 0 below the first; the highest finite bound when
    it falls in +Inf. None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


def window_figures(before: Scrape, after: Scrape) -> dict[str, Any]:
    """/invocations between two scrapes: requests, 5xx share, rate and p99 (None without
    requests)."""
    seconds = after.at - before.at
    if seconds <= 0:
        raise TrainerError("the second scrape is not later than the first")
    base = Scrape(before.at) if _reset(before, after) else before
    by_status = {
        status: after.by_status.get(status, 0.0) - base.by_status.get(status, 0.0)
        for status in after.by_status
    }
    answered = sum(by_status.values())
    errors = sum(n for status, n in by_status.items() if status.startswith("5"))
    buckets = {le: n - base.buckets.get(le, 0.0) for le, n in after.buckets.items()}
    p99 = histogram_quantile(0.99, buckets)
    return {
        "window_s": round(seconds, 3),
        "requests": int(answered),
        "errors": int(errors),
        "error_rate": errors / answered if answered else None,
        "throughput_rps": answered / seconds,
        "p99_latency_ms": None if p99 is None else p99 * 1000.0,
        "counters_reset": base is not before,
    }


def breaches(figures: dict[str, Any], slo: Slo) -> list[str]:
    """Each objective the window missed, as a line a person reads in the notification."""
    found = []
    p99 = figures["p99_latency_ms"]
    if slo.p99_latency_ms is not None and p99 is not None and p99 > slo.p99_latency_ms:
        found.append(f"p99 latency {p99:.4g} ms > {slo.p99_latency_ms:g} ms")
    rate = figures["error_rate"]
    if slo.max_error_rate is not None and rate is not None and rate > slo.max_error_rate:
        found.append(
            f"error rate {rate:.2%} > {slo.max_error_rate:.2%} "
            f"({figures['errors']} of {figures['requests']} answered 5xx)"
        )
    throughput = figures["throughput_rps"]
    if slo.min_throughput_rps is not None and throughput < slo.min_throughput_rps:
        found.append(f"throughput {throughput:.3g} rps < {slo.min_throughput_rps:g} rps")
    return found


def check_slo(
    endpoint: str,
    slo: Slo,
    window_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Watch `endpoint` for the SLO's window (or `window_s`) and judge it: a small JSON."""
    window_s = slo.window_minutes * 60.0 if window_s is None else window_s
    result: dict[str, Any] = {
        "endpoint": endpoint,
        "objectives": {k: v for k, v in slo.to_dict().items() if k != "window_minutes"},
    }
    try:
        before = scrape(endpoint)
        log.info("SLO: watching %s for %.0f s", endpoint, window_s)
        sleep(window_s)
        after = scrape(endpoint)
    except EndpointDown as exc:
        reason = f"the endpoint did not answer: {exc}"
        return {**result, "checked": True, "breached": True, "breaches": [reason]}
    figures = window_figures(before, after)
    found = breaches(figures, slo)
    if figures["requests"] == 0:
        log.info("SLO: no /invocations in the window: latency and error rate not judged")
    return {
        **result,
        **figures,
        "model_version": after.model_version,
        "checked": True,
        "breached": bool(found),
        "breaches": found,
    }


def champion_slo(
    version: Any,
    slo: Slo,
    window_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """check_slo at the endpoint the champion `version` (an MLflow ModelVersion) was
    deployed to; not checked when the deployer recorded none."""
    endpoint = (version.tags or {}).get(DEPLOYED_ENDPOINT_TAG)
    if not endpoint:
        reason = (
            f"champion v{version.version} has no {DEPLOYED_ENDPOINT_TAG} tag: not deployed here"
        )
        log.warning("SLO not checked: %s", reason)
        return {"checked": False, "breached": False, "reason": reason}
    result = check_slo(endpoint, slo, window_s, sleep)
    line = "; ".join(result["breaches"]) or "met"
    log.info("SLO of champion v%s at %s: %s", version.version, endpoint, line)
    return result
