"""Start a real MLflow tracking server on 127.0.0.1 (SQLite backend, local artifacts)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MlflowServer:
    url: str
    root: Path
    process: subprocess.Popen


def _mlflow_executable() -> str:
    beside_python = Path(sys.executable).with_name("mlflow")
    found = str(beside_python) if beside_python.exists() else shutil.which("mlflow")
    if not found:
        raise RuntimeError("the mlflow command is not installed: run `make setup`")
    return found


def _wait_healthy(url: str, process: subprocess.Popen, log_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(
        f"mlflow server at {url} not healthy after {timeout_s:.0f}s (log: {log_file})"
    )


def _stop(process: subprocess.Popen, timeout_s: float = 15) -> None:
    if process.poll() is not None:
        return
    # The server forks workers: signal the whole process group.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


@dataclass(frozen=True)
class BasicAuth:
    """MLflow's basic-auth app, as clusters run it: an admin and a default permission."""

    admin_user: str
    admin_password: str
    default_permission: str = "NO_PERMISSIONS"

    def write_config(self, root: Path) -> Path:
        """The app's ini file (its user store beside it); the password goes in by env."""
        path = root / "basic_auth.ini"
        path.write_text(
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
            f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
            f"admin_username = {self.admin_user}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        return path


# The server's job runner (huey workers for GenAI jobs) costs six processes and seconds of
# start-up; tracking and the registry do not use it.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_command(root: Path, port: int) -> list[str]:
    """`mlflow server` on 127.0.0.1:port with its data (SQLite, artifacts) under `root`."""
    return [
        _mlflow_executable(),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "mlartifacts"),
    ]


@contextmanager
def local_mlflow_server(
    root: Path, port: int | None = None, timeout_s: float = 90, auth: BasicAuth | None = None
) -> Iterator[MlflowServer]:
    """A tracking server and registry whose data lives under `root`; stopped on exit.
    With `auth`, MLflow's basic-auth app is on (users and per-resource permissions)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = root / "mlflow-server.log"
    cmd = server_command(root, port)
    env = {**os.environ, **SERVER_ENV}
    if auth is not None:
        cmd += ["--app-name", "basic-auth"]
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth.write_config(root))
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = auth.admin_password
        # The auth app's CSRF protection signs with it; one server, so any fresh key does.
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    log.info("starting MLflow server at %s (data in %s)", url, root)
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        _wait_healthy(url, process, log_file, timeout_s)
        yield MlflowServer(url=url, root=root, process=process)
    finally:
        _stop(process)
