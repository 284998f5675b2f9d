"""`kubectl port-forward` to an in-cluster Service, for the test process on the host.

kubectl picks a free local port (`:PORT`) and prints it; its output is drained for as long as
it runs (it logs every connection, and a full pipe would stall it). A port-forward ends when
the pod behind it goes away, so `url` starts a new one when the old one has exited. Clients
use http://localhost:<port>: MLflow accepts `localhost:*` as Host (its allowed hosts, set by
infra/ml_infra/mlflow_release.py), not 127.0.0.1.
"""

from __future__ import annotations

import logging
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_FORWARDING = re.compile(r"Forwarding from (?:127\.0\.0\.1|\[::1\]):(\d+) ->")


class PortForward:
    def __init__(
        self, context: str, namespace: str, target: str, remote_port: int, name: str = ""
    ) -> None:
        self.context = context
        self.namespace = namespace
        self.target = target  # svc/<name> or pod/<name>
        self.remote_port = remote_port
        self.name = name or f"{namespace}/{target}"
        self.local_port: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=50)
        self.restarts = 0

    def _command(self) -> list[str]:
        kubectl = shutil.which("kubectl") or "kubectl"
        return [
            kubectl,
            "--context",
            self.context,
            "--namespace",
            self.namespace,
            "port-forward",
            self.target,
            f":{self.remote_port}",
        ]

    def _drain(self, process: subprocess.Popen[str], ports: queue.Queue[int]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._output.append(line.rstrip())
            match = _FORWARDING.search(line)
            if match:
                ports.put(int(match[1]))

    def start(self) -> None:
        log.info("port-forward %s:%d: starting", self.name, self.remote_port)
        ports: queue.Queue[int] = queue.Queue()
        process = subprocess.Popen(
            self._command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._drain, args=(process, ports), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self.local_port = ports.get(timeout=0.5)
                break
            except queue.Empty:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = "\n".join(self._output)
                    raise RuntimeError(
                        f"kubectl port-forward to {self.name}:{self.remote_port} did not start "
                        f"within {READY_TIMEOUT_S:.0f}s:\n{output}"
                    ) from None
        self._process = process
        log.info("port-forward %s:%d -> localhost:%d", self.name, self.remote_port, self.local_port)

    @property
    def url(self) -> str:
        """http://localhost:<port>, restarting the port-forward first if it has ended."""
        if self._process is None or self._process.poll() is not None:
            if self._process is not None:
                self.restarts += 1
                log.warning(
                    "port-forward %s ended (%s); restarting", self.name, " | ".join(self._output)
                )
            self.start()
        return f"http://localhost:{self.local_port}"

    def close(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    def __enter__(self) -> PortForward:
        self.url  # noqa: B018 - starts it
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
