"""The smoke test: the model's own saved input example, sent to the freshly rolled-out server.

The example is the one logged with the model (MLflow saves it as serving_input_example.json,
already in the scoring payload format), so the check needs no knowledge of the features.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from typing import Any

import requests
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from deployer.errors import StepFailed, one_line

log = logging.getLogger(__name__)

SMOKE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SmokeRequest:
    payload: dict[str, Any]
    rows: int


def count_rows(payload: dict[str, Any]) -> int:
    """Rows in a scoring payload: the number of predictions a correct answer carries."""
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"]["data"])
    if "dataframe_records" in payload:
        return len(payload["dataframe_records"])
    for key in ("inputs", "instances"):
        value = payload.get(key)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict) and value:
            first = next(iter(value.values()))
            return len(first) if isinstance(first, list) else 1
    raise StepFailed(
        "model", f"cannot tell the rows of the input example (keys: {sorted(payload)})"
    )


def smoke_request(model_uri: str, mlmodel: Model | None = None) -> SmokeRequest:
    """The request built from the model's saved input example; StepFailed("model") without one."""
    import mlflow

    try:
        mlmodel = mlmodel or Model.load(model_uri)
        info = mlmodel.saved_input_example_info
        if not info:
            raise StepFailed(
                "model", f"{model_uri} has no input example to smoke-test it with (log one)"
            )
        serving_path = info.get("serving_input_path")
        if serving_path:
            with tempfile.TemporaryDirectory(prefix="deployer-example-") as scratch:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{model_uri}/{serving_path}", dst_path=scratch
                )
                with open(local) as handle:
                    text = handle.read()
        else:  # models saved before MLflow wrote the serving form: convert the raw example
            example = mlmodel.load_input_example(model_uri)
            text = mlflow.models.convert_input_example_to_serving_input(example)
    except (MlflowException, OSError, ValueError) as exc:
        raise StepFailed(
            "model", f"cannot read the input example of {model_uri}: {one_line(exc)}"
        ) from None
    payload = json.loads(text)
    if not isinstance(payload, dict):
        raise StepFailed("model", f"the serving input example of {model_uri} is not a JSON object")
    return SmokeRequest(payload, count_rows(payload))


def check(url: str, request: SmokeRequest, timeout_s: float = SMOKE_TIMEOUT_S) -> None:
    """POST the example; StepFailed("smoke_test") unless it answers one prediction per row."""
    where = f"{url}/invocations"
    log.info("smoke test: %d rows to %s", request.rows, where)
    try:
        response = requests.post(where, json=request.payload, timeout=timeout_s)
    except requests.RequestException as exc:
        raise StepFailed("smoke_test", f"POST {where}: {one_line(exc)}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200:
        message = answer.get("message") if isinstance(answer, dict) else response.text[:300]
        raise StepFailed("smoke_test", f"{where} answered HTTP {response.status_code}: {message}")
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list):
        raise StepFailed("smoke_test", f"{where} answered no predictions list")
    if len(predictions) != request.rows:
        raise StepFailed(
            "smoke_test",
            f"expected {request.rows} predictions (one per input row), got {len(predictions)}",
        )
    log.info("smoke test passed: %d predictions", len(predictions))
