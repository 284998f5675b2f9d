"""Serving benchmark: the deployer's model server next to `mlflow models serve`, same model.

Starts a real MLflow server, logs and registers one small PyTorch churn-style model (raw
features as the trainer logs them: int64 counts and float64 columns), runs both
servers on it side by side (one uvicorn worker each), then sends the same requests to each
with one sequential client (requests.Session, after a warm-up): single-row and 100-row
dataframe_split payloads, in alternating rounds so background noise hits both alike.
Prints requests/s and p50/p99 latency per server and the ratios ours/mlflow.

Targets: our throughput at least mlflow's for both payloads, and single-row p99 <= 15 ms;
the script exits 1 when one is missed. Run: .venv/bin/python tests/benchmarks/bench_serving.py
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "dags"))

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

from ml_platform.local.mlflow_server import free_port, local_mlflow_server  # noqa: E402

log = logging.getLogger("bench_serving")

MODEL_NAME = "bench-churn"
FEATURES = 20
COUNT_FEATURES = 6
COLUMNS = [f"f{i}" for i in range(FEATURES)]
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 10.0
WARMUP = 200
ROUNDS = 4
P99_TARGET_MS = 15.0


@dataclass(frozen=True)
class Result:
    server: str
    payload: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


def _raw_features(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Raw churn-like features as the trainer's models take them: int64 counts, float64 rest."""
    frame = pd.DataFrame(rng.random((rows, FEATURES)).round(6), columns=COLUMNS)
    for name in COLUMNS[:COUNT_FEATURES]:
        frame[name] = (frame[name] * 40).astype("int64")
    return frame


def _log_model(rng: np.random.Generator) -> str:
    """A churn-shaped MLP: raw feature columns in, one probability per row out."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
        torch.nn.Sigmoid(),
    ).eval()
    example = _raw_features(rng, 5)
    with torch.no_grad():
        output = net(torch.tensor(example.to_numpy("float32"))).numpy()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, output)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=["torch", "mlflow"],
            # pt2 (the default outside Databricks) cannot trace a DataFrame input example.
            serialization_format="pickle",
        )
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    return f"models:/{MODEL_NAME}/{version.version}"


@contextmanager
def _process(command: list[str], log_file: Path) -> Iterator[subprocess.Popen]:
    with open(log_file, "ab") as out:
        # mlflow models serve runs `uvicorn` by name: the venv's bin must be on PATH.
        env = dict(
            os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        )
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def _wait_ready(name: str, url: str, process: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{name} not ready after {START_TIMEOUT_S:.0f}s; see {log_file}")


def _payload(rng: np.random.Generator, rows: int) -> dict:
    return {"dataframe_split": _raw_features(rng, rows).to_dict(orient="split", index=False)}


def _send(session: requests.Session, url: str, payload: dict, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.post(url, json=payload, timeout=REQUEST_TIMEOUT_S)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return latencies


def _as_array(answer: dict) -> np.ndarray:
    """Predictions as numbers, whether rows came as records ({"0": p}) or plain values."""
    rows = answer["predictions"]
    return np.asarray([list(row.values()) if isinstance(row, dict) else row for row in rows])


def _measure(urls: dict[str, str], payloads: dict[str, tuple[dict, int]]) -> list[Result]:
    sessions = {name: requests.Session() for name in urls}
    results = []
    for payload_name, (payload, total) in payloads.items():
        # Same answers first: a faster server that answers differently would prove nothing.
        answers = {
            name: sessions[name].post(url, json=payload, timeout=REQUEST_TIMEOUT_S).json()
            for name, url in urls.items()
        }
        first, *others = (_as_array(answer) for answer in answers.values())
        for other in others:
            if first.shape != other.shape or not np.allclose(first, other, atol=1e-6):
                raise RuntimeError(f"the servers disagree on the {payload_name} predictions")
        for name, url in urls.items():
            _send(sessions[name], url, payload, WARMUP)
        latencies: dict[str, list[float]] = {name: [] for name in urls}
        seconds = dict.fromkeys(urls, 0.0)
        for _ in range(ROUNDS):  # alternate, so noise on the machine hits both servers
            for name, url in urls.items():
                started = time.perf_counter()
                latencies[name] += _send(sessions[name], url, payload, total // ROUNDS)
                seconds[name] += time.perf_counter() - started
        for name in urls:
            results.append(
                Result(name, payload_name, len(latencies[name]), seconds[name], latencies[name])
            )
    return results


def _report(results: list[Result]) -> bool:
    header = ("server", "payload", "requests", "req/s", "p50 ms", "p99 ms")
    print("\n{:<8} {:<10} {:>8} {:>9} {:>8} {:>8}".format(*header))
    for r in results:
        print(
            f"{r.server:<8} {r.payload:<10} {r.requests:>8} {r.rps:>9.1f} "
            f"{r.percentile(50):>8.2f} {r.percentile(99):>8.2f}"
        )
    ok = True
    by_key = {(r.server, r.payload): r for r in results}
    print()
    for payload in dict.fromkeys(r.payload for r in results):
        ours, theirs = by_key[("ours", payload)], by_key[("mlflow", payload)]
        throughput = ours.rps / theirs.rps
        p99 = ours.percentile(99) / theirs.percentile(99)
        p50 = ours.percentile(50) / theirs.percentile(50)
        print(
            f"{payload:<10} ours/mlflow: throughput x{throughput:.2f}, "
            f"p50 x{p50:.2f}, p99 x{p99:.2f}"
        )
        if throughput < 1.0:
            print(f"  MISSED: {payload} throughput below mlflow models serve")
            ok = False
    single_p99 = by_key[("ours", "1-row")].percentile(99)
    if single_p99 > P99_TARGET_MS:
        print(f"  MISSED: single-row p99 {single_p99:.2f} ms > {P99_TARGET_MS} ms")
        ok = False
    print(f"\nsingle-row p99 (ours): {single_p99:.2f} ms (target <= {P99_TARGET_MS} ms)")
    print("targets met" if ok else "targets MISSED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="single-row requests per server")
    parser.add_argument("--batch", type=int, default=300, help="100-row requests per server")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = np.random.default_rng(0)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch, ExitStack() as stack:
        root = Path(scratch)
        server = stack.enter_context(local_mlflow_server(root / "mlflow"))
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        mlflow.set_tracking_uri(server.url)
        model_uri = _log_model(rng)
        ours_port, theirs_port = free_port(), free_port()
        commands = {
            "ours": [str(bin_dir / "deployer"), "serve", "--model-uri", model_uri]
            + ["--host", "127.0.0.1", "--port", str(ours_port)],
            "mlflow": [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri]
            + ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(theirs_port), "-w", "1"],
        }
        ready_urls = {
            "ours": f"http://127.0.0.1:{ours_port}/ready",
            "mlflow": f"http://127.0.0.1:{theirs_port}/health",
        }
        for name, command in commands.items():
            log_file = root / f"{name}.log"
            log.info("starting %s: %s", name, " ".join(command))
            process = stack.enter_context(_process(command, log_file))
            _wait_ready(name, ready_urls[name], process, log_file)
        urls = {
            "ours": f"http://127.0.0.1:{ours_port}/invocations",
            "mlflow": f"http://127.0.0.1:{theirs_port}/invocations",
        }
        payloads = {
            "1-row": (_payload(rng, 1), args.single),
            "100-row": (_payload(rng, 100), args.batch),
        }
        log.info("measuring: %s", ", ".join(f"{n} x{c}" for n, (_, c) in payloads.items()))
        results = _measure(urls, payloads)
    print(f"model {model_uri}; {os.cpu_count()} CPUs; one sequential client")
    return 0 if _report(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
