"""A GCS emulator (gcp-storage-emulator, in memory) on 127.0.0.1 for the gs:// tests.

It serves GCS's JSON API, which pyarrow's GcsFileSystem speaks with `endpoint_override`,
`scheme="http"` and anonymous access: what the trainer and the partition sensor do when
STORAGE_EMULATOR_HOST is set. It runs as a process of its own, started and stopped by the
test with bounded waits.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GcsEmulator:
    url: str  # what STORAGE_EMULATOR_HOST takes: http://127.0.0.1:<port>

    def _call(self, method: str, path: str, body: bytes | None, content_type: str) -> None:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()

    def create_bucket(self, name: str) -> None:
        body = json.dumps({"name": name}).encode()
        self._call("POST", "/storage/v1/b?project=test", body, "application/json")

    def put(self, bucket: str, name: str, data: bytes) -> None:
        """An object written by another client, as data landing from upstream would be."""
        path = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
        self._call("POST", path, data, "application/octet-stream")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as response:
                response.read()
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gcp-storage-emulator at {url} did not answer") from None
            time.sleep(0.1)


@contextmanager
def gcs_emulator() -> Iterator[GcsEmulator]:
    """A fresh in-memory emulator for the duration of the block."""
    port = _free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield GcsEmulator(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
