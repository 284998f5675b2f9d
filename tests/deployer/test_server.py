"""The model server: endpoints, MLflow's payload formats, the fast path, a failed load."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import torch
from deployer_testkit import FEATURES, feature_rows
from mlflow.models import infer_signature
from mlflow.pyfunc.scoring_server import infer_and_parse_data

from deployer import processes
from deployer.errors import StepFailed
from deployer.server import ModelIdentity, ModelSlot, create_app
from deployer.targets import Revision
from deployer.targets.local import LocalTarget


class AsgiClient:
    """Requests straight into the ASGI app (httpx's ASGI transport), no socket involved."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def mixed_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """Raw churn features as a partition has them: counts as int64, money as float64."""
    frame = feature_rows(rows, seed).astype("float64")
    for count in ("tenure", "support_calls"):
        frame[count] = (frame[count] * 50).astype("int64")
    return frame


# The signature decides the parse: one float dtype (one array) or mixed int/float columns.
EXAMPLES = {"float32": feature_rows, "mixed": mixed_rows}


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def saved_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A torch churn model saved to disk: the server loads it without any tracking server."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(len(FEATURES), 1), torch.nn.Sigmoid()).eval()
    example = EXAMPLES[request.param](3)
    with torch.no_grad():
        output = net(torch.tensor(example.to_numpy("float32"))).numpy()
    path = tmp_path_factory.mktemp("model") / request.param
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, output)
    mlflow.pytorch.save_model(
        net,
        str(path),
        signature=signature,
        input_example=example,
        pip_requirements=["torch"],
        serialization_format="pickle",
    )
    return str(path)


@pytest.fixture(scope="module")
def loaded(saved_model: str) -> ModelSlot:
    slot = ModelSlot(ModelIdentity.from_uri(saved_model))
    slot.load()
    return slot


def example_rows(slot: ModelSlot, rows: int, seed: int) -> pd.DataFrame:
    return EXAMPLES[Path(slot.identity.model_uri).name](rows, seed)


def split_payload(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": frame.to_dict(orient="split", index=False)}


def test_ready_only_once_the_model_is_loaded(saved_model: str) -> None:
    slot = ModelSlot(ModelIdentity.from_uri("models:/churn/7"))
    client = AsgiClient(create_app(slot))

    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503
    assert client.post("/invocations", json=split_payload(feature_rows(1))).status_code == 503
    assert client.get("/version").json() == {
        "model_name": "churn",
        "model_version": "7",
        "model_uri": "models:/churn/7",
        "ready": False,
    }


def test_predictions_match_the_model_for_every_payload_format(loaded: ModelSlot) -> None:
    client = AsgiClient(create_app(loaded))
    frame = example_rows(loaded, 4, seed=3)
    expected = loaded.model.predict(frame).to_dict(orient="records")
    payloads = {
        "split": split_payload(frame),
        "records": {"dataframe_records": frame.to_dict(orient="records")},
        "reordered columns": split_payload(frame[list(reversed(FEATURES))]),
        "inputs": {"inputs": frame.to_dict(orient="records")},
    }

    assert client.get("/ready").status_code == 200
    for name, payload in payloads.items():
        response = client.post("/invocations", json=payload)
        assert response.status_code == 200, (name, response.text)
        got = response.json()["predictions"]
        assert [row["0"] for row in got] == pytest.approx([row[0] for row in expected]), name


@pytest.mark.parametrize("orient", ["split", "records"])
def test_fast_path_builds_the_same_frame_as_mlflows_parser(loaded: ModelSlot, orient: str) -> None:
    frame = example_rows(loaded, 5, seed=11)
    payload = json.loads(
        json.dumps(  # what arrives over HTTP: JSON numbers, some integral ones as 3.0
            split_payload(frame)
            if orient == "split"
            else {"dataframe_records": frame.astype("float64").to_dict(orient="records")}
        )
    )

    fast = loaded._fast_frame(payload)

    assert fast is not None
    reference = infer_and_parse_data(payload, loaded.model.metadata.get_input_schema())
    pd.testing.assert_frame_equal(fast, reference)
    assert loaded.model.predict(fast).equals(loaded.model.predict(reference))


def test_fast_path_leaves_unusual_payloads_to_mlflow(loaded: ModelSlot) -> None:
    frame = example_rows(loaded, 2, seed=0)
    assert loaded._fast_frame(split_payload(frame[list(reversed(FEATURES))])) is None
    assert loaded._fast_frame({"dataframe_records": [{"tenure": 1.0}]}) is None
    ragged = {"dataframe_split": {"columns": FEATURES, "data": [[1.0, 2.0, 3.0], [1.0]]}}
    assert loaded._fast_frame(ragged) is None


def test_bad_requests_get_a_one_line_json_error(loaded: ModelSlot) -> None:
    client = AsgiClient(create_app(loaded))

    missing = client.post("/invocations", json={"dataframe_records": [{"tenure": 1.0}]})
    not_json = client.post(
        "/invocations", content=b"{", headers={"content-type": "application/json"}
    )
    csv = client.post("/invocations", content=b"a\n1", headers={"content-type": "text/csv"})

    assert missing.status_code == 400
    assert "\n" not in missing.json()["message"]
    assert "monthly_charges" in missing.json()["message"]
    assert not_json.status_code == 400
    assert csv.status_code == 415


def test_serve_exits_when_the_model_cannot_load(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deployer", "serve", "--model-uri", str(tmp_path / "nothing")]
        + ["--host", "127.0.0.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot load model" in done.stderr


def test_local_readiness_failure_stops_the_new_server(mlflow_uri: str, tmp_path: Path) -> None:
    target = LocalTarget(tmp_path, "never-registered")
    target.start(Revision("never-registered", "1"))
    pid = target.load_state()["candidate"]["pid"]
    try:
        with pytest.raises(StepFailed) as failure:
            target.wait_ready(timeout_s=90)
        assert failure.value.step == "readiness"
        assert failure.value.why.startswith("model server exited (code 1): ")
    finally:
        target.restore(timeout_s=15)
    assert target.load_state()["candidate"] is None
    assert not processes.alive(pid)
