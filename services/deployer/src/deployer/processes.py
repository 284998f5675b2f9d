"""Background processes that outlive the command that started them, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# Processes this process started, kept so their exit status can be read (and so that
# subprocess's own bookkeeping never reaps them behind our back).
_children: dict[int, subprocess.Popen] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(command: list[str], log_file: Path, env: dict[str, str] | None = None) -> int:
    """Start `command` in its own session (it survives us), output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _children[process.pid] = process
    return process.pid


def supervised(command: list[str], ready_url: str) -> list[str]:
    """`command` run under deployer.supervisor: restarted when it dies after being ready."""
    return [sys.executable, "-m", "deployer.supervisor", "--ready-url", ready_url, "--", *command]


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a process started by an earlier command included)."""
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_code(pid: int) -> int | None:
    """The exit status of a process this process started, once it has exited."""
    child = _children.get(pid)
    return child.poll() if child else None


def stop(pid: int, timeout_s: float = 15) -> None:
    """SIGTERM the process group `pid` leads, SIGKILL it after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not alive(pid):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
    raise TimeoutError(f"process {pid} still runs after SIGKILL")


def log_tail(log_file: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log, for one-line error messages."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])
