"""The local target: model servers as background processes on 127.0.0.1.

Each version gets its own server process on a fresh port; the new one is started, made ready
and smoke-tested while the old one keeps serving, then the state file is switched to it and
the old one stops. Clients use the front (deployer.front), a proxy on one port for the model's
whole life that follows the state file, so the endpoint URL stays stable across versions.

State lives in `<state dir>/<model>/state.json` (pids, ports, versions, URLs), with the
servers' logs beside it; every process is recorded there before it is waited on, so nothing
started is ever lost track of.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from deployer import processes
from deployer.errors import StepFailed, one_line
from deployer.targets import Revision, Serving

log = logging.getLogger(__name__)

STATE_DIR_ENV = "DEPLOYER_STATE_DIR"
DEFAULT_STATE_DIR = Path(".local/deployer")  # relative to the working directory
FRONT_PORT_ENV = "DEPLOYER_LOCAL_PORT"
HOST = "127.0.0.1"
POLL_S = 0.2
SWITCH_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


def state_root() -> Path:
    """Where the local target keeps its state: DEPLOYER_STATE_DIR, else ./.local/deployer."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).resolve()


def stop_all_models(root: Path) -> list[str]:
    """Stop every server and front recorded under `root` (tear-down); the models it found."""
    stopped = []
    for state_file in sorted(Path(root).glob("*/state.json")):
        LocalTarget(Path(root), state_file.parent.name).stop_all()
        stopped.append(state_file.parent.name)
    return stopped


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("._") or "model"


def _get_json(url: str, timeout_s: float) -> dict[str, Any]:
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return response.json()


class LocalTarget:
    name = "local"

    def __init__(self, root: Path, model_name: str, front_port: int | None = None) -> None:
        self.model_name = model_name
        self.dir = Path(root) / _slug(model_name)
        self.state_file = self.dir / "state.json"
        self.front_port = front_port
        self._switched = False

    # -- state file -------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"model_name": self.model_name, "url": None, "front": None, "server": None}
        except ValueError as exc:
            raise StepFailed("state", f"{self.state_file} is not valid JSON: {exc}") from None

    def _save(self, state: dict[str, Any]) -> None:
        # Write then rename: the front and other readers never see half a file.
        self.dir.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(partial, self.state_file)

    # -- Target -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        return self.load_state().get("url")

    @contextmanager
    def exclusive(self, timeout_s: float) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_file = self.dir / "lock"
        with open(lock_file, "w") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StepFailed(
                            "lock",
                            f"another deployer command held {lock_file} for {timeout_s:.0f}s",
                        ) from None
                    time.sleep(POLL_S)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def current(self) -> Serving | None:
        state = self.load_state()
        server, url = state.get("server"), state.get("url")
        if not server or not url:
            return None
        where = f"pid {server['pid']} on port {server['port']}"
        try:
            answer = _get_json(f"{url}/version", timeout_s=5)
        except (requests.RequestException, ValueError) as exc:
            return Serving(None, server["model_uri"], url, f"{url} did not answer: {one_line(exc)}")
        return Serving(answer.get("model_version"), answer.get("model_uri"), url, where)

    def start(self, revision: Revision) -> None:
        state = self.load_state()
        for key in ("candidate", "retiring"):
            # A deploy killed half-way (SIGKILL) left this server behind: it no longer serves.
            leftover = state.pop(key, None)
            if leftover:
                log.info(
                    "stopping the %s server left by an earlier deploy (pid %d)",
                    key,
                    leftover["pid"],
                )
                processes.stop(leftover["pid"], STOP_TIMEOUT_S)
        port = processes.free_port(HOST)
        log_file = self.dir / f"server-v{revision.version}-{port}.log"
        command = [sys.executable, "-m", "deployer", "serve", "--model-uri", revision.model_uri]
        command += ["--host", HOST, "--port", str(port)]
        # Supervised: a server that dies once ready is restarted on the same port (the pid is
        # the supervisor's; stopping it stops both).
        command = processes.supervised(command, f"http://{HOST}:{port}/ready")
        try:
            pid = processes.spawn(command, log_file)
        except OSError as exc:
            raise StepFailed("rollout", f"cannot start the model server: {exc}") from None
        state["candidate"] = {
            "pid": pid,
            "port": port,
            "url": f"http://{HOST}:{port}",
            "version": revision.version,
            "model_uri": revision.model_uri,
            "log": str(log_file),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._save(state)
        log.info("started model server for v%s: pid %d, port %d", revision.version, pid, port)

    def wait_ready(self, timeout_s: float) -> str:
        candidate = self.load_state()["candidate"]
        pid, url, log_file = candidate["pid"], candidate["url"], Path(candidate["log"])
        log.info("waiting up to %.0fs for %s/ready", timeout_s, url)
        deadline = time.monotonic() + timeout_s
        while True:
            if not processes.alive(pid):
                code = processes.exit_code(pid)
                raise StepFailed(
                    "readiness",
                    f"model server exited (code {code}): {processes.log_tail(log_file)} "
                    f"(log: {log_file})",
                )
            try:
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass  # not listening yet
            if time.monotonic() >= deadline:
                raise StepFailed(
                    "readiness", f"model server not ready after {timeout_s:.0f}s (log: {log_file})"
                )
            time.sleep(POLL_S)

    def _ensure_front(self, state: dict[str, Any]) -> None:
        front = state.get("front")
        if front and processes.alive(front["pid"]):
            return
        # Same port as before when there was a front: the endpoint must not change.
        port = (front or {}).get("port") or self.front_port or processes.free_port(HOST)
        command = [sys.executable, "-m", "deployer.front", "--state-file", str(self.state_file)]
        command += ["--port", str(port)]
        pid = processes.spawn(command, self.dir / "front.log")
        state["front"] = {"pid": pid, "port": port, "log": str(self.dir / "front.log")}
        state["url"] = f"http://{HOST}:{port}"
        log.info("started the front on port %d (pid %d)", port, pid)

    def switch(self) -> None:
        state = self.load_state()
        candidate = state.get("candidate")
        state["retiring"] = state.get("server")
        state["server"] = candidate
        state["candidate"] = None
        self._ensure_front(state)
        self._save(state)
        self._switched = True
        # Prove the stable endpoint now reaches the new server before anyone relies on it.
        url, version = state["url"], candidate["version"]
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        why = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = _get_json(f"{url}/version", timeout_s=2)
                if answer.get("model_version") == version:
                    log.info("endpoint %s now serves v%s", url, version)
                    return
                why = f"it still serves v{answer.get('model_version')}"
            except (requests.RequestException, ValueError) as exc:
                why = one_line(exc)
            time.sleep(POLL_S)
        raise StepFailed(
            "switch", f"{url} does not serve v{version} after {SWITCH_TIMEOUT_S}s: {why}"
        )

    def finish(self) -> None:
        state = self.load_state()
        retiring = state.pop("retiring", None)
        if retiring:
            log.info(
                "stopping the previous server v%s (pid %d)", retiring["version"], retiring["pid"]
            )
            try:
                processes.stop(retiring["pid"], STOP_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.warning("previous server pid %d did not stop: %s", retiring["pid"], exc)
        self._save(state)

    def restore(self, timeout_s: float) -> None:
        state = self.load_state()
        if self._switched:
            failed, state["server"] = state.get("server"), state.pop("retiring", None)
            self._switched = False
        else:
            failed = state.get("candidate")
        state["candidate"] = None
        # Traffic first goes back to the old server, then the failed one stops.
        self._save(state)
        if failed:
            log.info("stopping the failed server v%s (pid %d)", failed["version"], failed["pid"])
            processes.stop(failed["pid"], min(timeout_s, STOP_TIMEOUT_S))

    def recover(self, champion: str | None) -> None:
        """Put right what a command killed half-way (SIGKILL) left in the state; called under
        the lock, so any `candidate` or `retiring` server is stale. Killed after the switch
        but before `champion` moved, the endpoint goes back to the champion's server."""
        state = self.load_state()
        candidate, retiring = state.get("candidate"), state.pop("retiring", None)
        if not candidate and not retiring:
            return
        stale = [candidate] if candidate else []
        server = state.get("server")
        if (
            retiring
            and retiring["version"] == champion
            and (server or {}).get("version") != champion
            and processes.alive(retiring["pid"])
        ):
            log.info("the endpoint goes back to champion v%s (pid %d)", champion, retiring["pid"])
            state["server"], retiring = retiring, server
        if retiring:
            stale.append(retiring)
        state["candidate"] = None
        self._save(state)  # traffic first, then the stale servers stop
        for entry in stale:
            log.info("stopping the server v%s left by an interrupted command", entry["version"])
            try:
                processes.stop(entry["pid"], STOP_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.warning("server pid %d did not stop: %s", entry["pid"], exc)

    def stop_all(self) -> None:
        """Stop every process the state names (used to tear a local setup down)."""
        state = self.load_state()
        for key in ("candidate", "retiring", "server", "front"):
            entry = state.get(key)
            if entry:
                processes.stop(entry["pid"], STOP_TIMEOUT_S)
