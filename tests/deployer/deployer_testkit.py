"""Helpers for the deployer tests: models logged to the real MLflow server, and the CLI run
in-process or as the real console script."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.models import infer_signature

from deployer import cli
from deployer.targets.local import LocalTarget

FEATURES = ["tenure", "monthly_charges", "support_calls"]
CONSOLE_SCRIPT = Path(sys.executable).with_name("deployer")
COMMAND_TIMEOUT_S = 180

# Models logged "from code" (a file, not a pickled object): the model servers run in other
# processes, where classes defined in a test module could not be unpickled.
RAISING_MODEL = """
    import mlflow
    from mlflow.pyfunc import PythonModel

    class Raises(PythonModel):
        def predict(self, context, model_input, params=None):
            raise RuntimeError("model exploded on purpose")

    mlflow.models.set_model(Raises())
"""
ONE_ROW_MODEL = """
    import mlflow
    from mlflow.pyfunc import PythonModel

    class OneRow(PythonModel):
        def predict(self, context, model_input, params=None):
            return [0.5]  # one answer whatever the number of rows: a broken model

    mlflow.models.set_model(OneRow())
"""


def feature_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.random((rows, len(FEATURES)), dtype=np.float32), columns=FEATURES)


def log_torch_model(auc: float = 0.8, seed: int = 0, with_example: bool = True) -> str:
    """A run with a churn-shaped torch model (floats in, a probability out); its run id."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(len(FEATURES), 4), torch.nn.Sigmoid()).eval()
    example = feature_rows(3, seed)
    with torch.no_grad():
        output = net(torch.from_numpy(example.to_numpy().copy())).numpy()
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", auc)
        mlflow.pytorch.log_model(
            net,
            name="model",
            signature=infer_signature(example, output),
            input_example=example if with_example else None,
            pip_requirements=["torch", "mlflow"],
            serialization_format="pickle",  # pt2 cannot trace a DataFrame input example
        )
    return run.info.run_id


def log_code_model(code: str, where: Path) -> str:
    """A run with a pyfunc model defined by `code`; its run id."""
    path = where / f"model_{uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(code))
    example = feature_rows(3)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(path),
            signature=infer_signature(example, np.zeros(3)),
            input_example=example,
            pip_requirements=["mlflow"],
        )
    return run.info.run_id


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    xcom: dict[str, Any] | None


@dataclass
class LocalDeployer:
    """The deployer CLI against the local target, with this test's state and XCom paths."""

    state_dir: Path
    xcom_path: Path
    capsys: pytest.CaptureFixture[str]

    def _xcom(self) -> dict[str, Any] | None:
        return json.loads(self.xcom_path.read_text()) if self.xcom_path.exists() else None

    def __call__(self, *args: str) -> CliResult:
        """In-process: fast, and the fixtures still see every server it starts."""
        self.xcom_path.unlink(missing_ok=True)
        self.capsys.readouterr()
        code = cli.main(list(args))
        out = self.capsys.readouterr()
        return CliResult(code, out.out, out.err, self._xcom())

    def console_script(self, *args: str) -> CliResult:
        """The installed `deployer` command in its own process, as the image runs it."""
        self.xcom_path.unlink(missing_ok=True)
        done = subprocess.run(
            [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        return CliResult(done.returncode, done.stdout, done.stderr, self._xcom())

    def start_console_script(self, *args: str) -> subprocess.Popen:
        """The console script started in the background; the caller waits for it."""
        return subprocess.Popen(
            [str(CONSOLE_SCRIPT), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def state(self, model_name: str) -> dict[str, Any]:
        return LocalTarget(self.state_dir, model_name).load_state()


class FakeEndpoint:
    """A TCP endpoint on 127.0.0.1 that counts connections and either answers 503 to every
    request or never answers at all: a dependency that is up but broken, to count how many
    attempts a client makes."""

    def __init__(self, answer_503: bool) -> None:
        self.answer_503 = answer_503
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._server.settimeout(0.2)
        self._open: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._open.append(conn)  # kept open: a hanging server never closes either
            if self.answer_503:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n"
                    )
                except OSError:
                    pass
                conn.close()

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
        for conn in self._open:
            conn.close()
        self._server.close()


def closed_port_url() -> str:
    """http://127.0.0.1:<a port nobody listens on>: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
