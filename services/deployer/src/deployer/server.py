"""The model server: one MLflow pyfunc model behind MLflow's scoring protocol.

Lean on purpose: Starlette routes (no FastAPI validation layer), one uvicorn worker, the model
loaded once in a background thread so /health answers at once and /ready flips when the model
is in memory. Payloads are parsed with MLflow's own parser (the formats and schema casting of
`mlflow models serve`), except the common all-numeric case, which takes one conversion
(see ModelSlot._fast_frame); prediction always goes through the pyfunc model's schema checks.
Every request is counted and timed for Prometheus at /metrics (deployer.metrics).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from deployer.errors import StepFailed, one_line, plain_line
from deployer.metrics import METRICS_PATH, ServerMetrics, instrument

log = logging.getLogger(__name__)

MODEL_URI_PATTERN = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>\d+)$")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class ModelIdentity:
    model_uri: str
    model_name: str | None
    model_version: str | None

    @classmethod
    def from_uri(cls, model_uri: str) -> ModelIdentity:
        """Name and version come from a `models:/NAME/VERSION` URI; other URIs have neither."""
        match = MODEL_URI_PATTERN.match(model_uri)
        if not match:
            return cls(model_uri, None, None)
        return cls(model_uri, match["name"], match["version"])


class ModelSlot:
    """The one model this process serves, filled by a background load."""

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity
        self.model: Any = None
        self.error: str | None = None
        self.run_id: str | None = None  # from the model's metadata, once loaded
        self.load_seconds: float | None = None
        self.loaded = threading.Event()

    def load(self) -> None:
        # Imported here, not at module level: the port opens (and /health answers) first.
        import mlflow.pyfunc
        from mlflow.pyfunc.scoring_server import infer_and_parse_data
        from mlflow.utils.proto_json_utils import NumpyEncoder

        started = time.monotonic()
        log.info("loading model %s", self.identity.model_uri)
        model = mlflow.pyfunc.load_model(self.identity.model_uri)
        self._parse = infer_and_parse_data
        self._encoder = NumpyEncoder
        self._input_schema = model.metadata.get_input_schema()
        self._fast_columns, self._fast_dtypes = _numeric_columns(self._input_schema)
        # Models whose signature comes from type hints take `inputs` as is, like MLflow's server.
        self._raw_inputs = model.metadata._is_signature_from_type_hint()
        self.model = model
        self.run_id = model.metadata.run_id
        self.self_check()
        self.load_seconds = time.monotonic() - started
        self.loaded.set()
        log.info("model loaded and checked in %.1fs; ready", self.load_seconds)

    def self_check(self) -> None:
        """Predict the model's own input example before saying ready.

        A model that cannot answer never becomes Ready, so a rolling update never sends it
        traffic: the rollout stalls, the deployer fails at readiness and restores the
        previous revision, and no client sees an error.
        """
        from deployer.smoke import smoke_request

        try:
            example = smoke_request(self.identity.model_uri)
        except StepFailed as exc:
            log.warning("no self-check before ready: %s", exc.why)
            return
        data, params = self.parse(json.dumps(example.payload).encode())
        predictions = json.loads(self.predict(data, params))["predictions"]
        if len(predictions) != example.rows:
            raise ValueError(
                f"self-check: expected {example.rows} predictions (one per input row), "
                f"got {len(predictions)}"
            )

    def parse(self, body: bytes) -> tuple[Any, dict[str, Any] | None]:
        """An MLflow scoring payload as the model's input and params; the JSON parsed once."""
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("payload must be a JSON object such as {'dataframe_split': ...}")
        params = document.pop("params", None)
        if self._raw_inputs:
            if "inputs" not in document:
                raise ValueError("this model takes {'inputs': ...} (its signature is type hints)")
            return document["inputs"], params
        data = self._fast_frame(document)
        if data is None:
            data = self._parse(document, self._input_schema)
        return data, params

    def predict(self, data: Any, params: dict[str, Any] | None) -> bytes:
        """`{"predictions": [...]}` as JSON bytes."""
        predictions = self.model.predict(data, params=params)
        return json.dumps({"predictions": _jsonable(predictions)}, cls=self._encoder).encode()

    def _fast_frame(self, document: dict[str, Any]) -> Any:
        """The DataFrame without MLflow's column-by-column parse, or None when not sure.

        MLflow's parser builds a frame and then casts it column by column, which costs
        milliseconds per request. For all-numeric schemas whose payload names exactly the
        schema's columns, in order, with rectangular rows, converting the rows straight to the
        schema's dtypes (one array when they share one dtype) gives the same frame. Anything
        else, every malformed payload included, goes through MLflow's parser instead.
        """
        columns, dtypes = self._fast_columns, self._fast_dtypes
        if columns is None or len(document) != 1:
            return None
        if "dataframe_split" in document:
            split = document["dataframe_split"]
            if not isinstance(split, dict) or split.keys() != {"columns", "data"}:
                return None
            if split["columns"] != columns:
                return None
            rows = split["data"]
        elif "dataframe_records" in document:
            records = document["dataframe_records"]
            if not isinstance(records, list) or not all(
                isinstance(r, dict) and len(r) == len(columns) for r in records
            ):
                return None
            try:
                rows = [[record[name] for name in columns] for record in records]
            except KeyError:
                return None
        else:
            return None
        if not isinstance(rows, list) or not rows:
            return None
        try:
            if len(set(dtypes)) == 1:
                values = np.array(rows, dtype=dtypes[0])
                if values.shape != (len(rows), len(columns)):
                    return None
                return pd.DataFrame(values, columns=columns)
            if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
                return None
            by_column = zip(columns, zip(*rows, strict=True), dtypes, strict=True)
            return pd.DataFrame(
                {name: np.array(values, dtype=dtype) for name, values, dtype in by_column}
            )
        except (TypeError, ValueError, OverflowError):
            return None


_FAST_TYPES = ("integer", "long", "float", "double")


def _numeric_columns(schema: Any) -> tuple[list[str] | None, list[Any]]:
    """(column names, numpy dtypes) when every input is a required plain numeric column."""
    from mlflow.types import ColSpec, DataType

    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None, []
    specs = schema.inputs
    if not all(
        isinstance(spec, ColSpec)
        and spec.required
        and isinstance(spec.type, DataType)
        and spec.type.name in _FAST_TYPES
        for spec in specs
    ):
        return None, []
    return list(schema.input_names()), [spec.type.to_numpy() for spec in specs]


def _jsonable(predictions: Any) -> Any:
    """The same JSON shapes as MLflow's scoring server, so clients can switch freely."""
    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def create_app(slot: ModelSlot) -> ASGIApp:
    """The ASGI app around a (possibly still loading) model, every request measured."""
    from mlflow.exceptions import MlflowException

    async def health(request: Request) -> Response:
        # Liveness: the process answers; loading the model may still take a while.
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if slot.loaded.is_set():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "loading"}, status_code=503)

    async def version(request: Request) -> Response:
        return JSONResponse(
            {
                "model_name": slot.identity.model_name,
                "model_version": slot.identity.model_version,
                "model_uri": slot.identity.model_uri,
                "ready": slot.loaded.is_set(),
            }
        )

    async def invocations(request: Request) -> Response:
        if not slot.loaded.is_set():
            return _error(503, "NOT_READY", "the model is still loading")
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip() != JSON_TYPE:
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", f"send {JSON_TYPE}, got {content_type!r}")
        body = await request.body()
        # Inline on the event loop: one worker, requests are short, and a thread hop per
        # request costs more than it buys here (health checks wait at most one prediction).
        try:
            data, params = slot.parse(body)
        except (ValueError, TypeError, KeyError, MlflowException) as exc:
            return _error(400, "BAD_REQUEST", plain_line(exc))
        try:
            payload = slot.predict(data, params)
        except MlflowException as exc:  # the input does not fit the model's schema
            return _error(400, "BAD_REQUEST", plain_line(exc))
        except Exception as exc:  # the model itself failed
            log.exception("prediction failed")
            return _error(500, "PREDICTION_FAILED", plain_line(exc))
        return Response(payload, media_type=JSON_TYPE)

    async def metrics_page(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ping", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route(METRICS_PATH, metrics_page, methods=["GET"]),
    ]
    metrics = ServerMetrics(slot, [route.path for route in routes])
    return instrument(Starlette(routes=routes), metrics)


def serve(model_uri: str, host: str, port: int, threads: int = 1) -> int:
    """Serve until stopped; exit status 1 when the model cannot be loaded."""
    # Same flag MLflow's scoring server sets: some flavors behave differently when serving.
    os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = "true"
    # Math libraries (torch, MKL, OpenBLAS) size their thread pools from these when first
    # imported, i.e. when the model loads. One worker serves one request at a time; a pool
    # per core only fights other processes for the CPUs (measured: a 100-row torch forward
    # pass took 7.8 ms with 2 threads on a busy 2-core machine, 0.1 ms with 1).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    slot = ModelSlot(ModelIdentity.from_uri(model_uri))
    config = uvicorn.Config(
        create_app(slot),
        host=host,
        port=port,
        workers=1,
        access_log=False,  # per-request log lines cost more than the prediction itself
        timeout_graceful_shutdown=10,
        log_config=None,
    )
    server = uvicorn.Server(config)

    def load_or_stop() -> None:
        try:
            slot.load()
        except Exception as exc:
            slot.error = one_line(exc)
            log.error("cannot load model %s: %s", model_uri, slot.error)
            server.should_exit = True

    threading.Thread(target=load_or_stop, name="model-loader", daemon=True).start()
    log.info("model server for %s on %s:%d (%d compute threads)", model_uri, host, port, threads)
    server.run()
    if slot.error:
        # Last line of the log on purpose: the deployer quotes it as the reason.
        log.error("model server stopped: %s", slot.error)
        return 1
    return 0
