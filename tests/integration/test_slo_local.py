"""The drift monitor's SLO check against a real served model: the deployer deploys a model
to a local model server (real MLflow server, real front), requests reach it during the
window, and the monitor reads the endpoint the champion was deployed to from its /metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from deployer import cli
from deployer.targets.local import stop_all_models
from ml_contract import Slo
from tests.deployer.deployer_testkit import feature_rows, log_torch_model
from trainer.monitor_slo import champion_slo
from trainer.registry import champion_version

REQUESTS_IN_WINDOW = 20


@pytest.fixture
def served(
    mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """(model name, endpoint) of a model the deployer deployed locally; stopped afterwards."""
    state_dir = tmp_path / "deployer"
    monkeypatch.setenv("DEPLOYER_TARGET", "local")
    monkeypatch.setenv("DEPLOYER_STATE_DIR", str(state_dir))
    monkeypatch.setenv("TRAINER_XCOM_PATH", str(tmp_path / "xcom" / "return.json"))
    name = f"slo-{uuid.uuid4().hex[:8]}"  # the MLflow server is the session's
    try:
        assert cli.main(["deploy", "--run-id", log_torch_model(), "--model-name", name]) == 0
        yield name, champion_version(MlflowClient(), name).tags["deployed_endpoint"]
    finally:
        stop_all_models(state_dir)


def _traffic(endpoint: str) -> Callable[[float], None]:
    """What runs in place of the window's sleep: real predictions, each answered 200."""

    def send(seconds: float) -> None:
        payload = {"dataframe_split": feature_rows(4).to_dict(orient="split", index=False)}
        for _ in range(REQUESTS_IN_WINDOW):
            answer = requests.post(f"{endpoint}/invocations", json=payload, timeout=30)
            assert answer.status_code == 200, answer.text

    return send


def test_a_tight_slo_is_breached_and_a_loose_one_is_not(served: tuple[str, str]) -> None:
    name, endpoint = served
    champion = champion_version(MlflowClient(), name)

    tight = Slo(p99_latency_ms=0.001, on_breach="rollback")
    report = champion_slo(champion, tight, sleep=_traffic(endpoint))
    assert report["checked"] and report["breached"], report
    assert report["endpoint"] == endpoint and report["model_version"] == "1"
    assert report["requests"] == REQUESTS_IN_WINDOW and report["errors"] == 0
    assert report["throughput_rps"] > 0
    assert len(report["breaches"]) == 1
    assert report["breaches"][0].startswith("p99 latency ")
    assert report["breaches"][0].endswith(" ms > 0.001 ms")

    # No p99 above the histogram's highest bound (10 s) is ever reported: this one holds on
    # any machine.
    loose = Slo(p99_latency_ms=20_000, max_error_rate=0.5)
    report = champion_slo(champion, loose, sleep=_traffic(endpoint))
    assert report["checked"] and not report["breached"], report
    assert report["breaches"] == []
    assert report["requests"] == REQUESTS_IN_WINDOW and report["error_rate"] == 0.0
    assert 0 < report["p99_latency_ms"] <= 10_000
