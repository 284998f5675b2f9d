"""Keeps a local model server running: restarts it when it dies, with bounded backoff.

On Kubernetes the kubelet restarts a crashed container; locally nothing did, and the front
answered 502 until the next deploy. The local target therefore starts each server as
`python -m deployer.supervisor --ready-url URL -- <serve command>`: the supervisor's pid is the
one in the state file, its child serves on the same port after every restart, so the front
(which forwards to that port) reaches it again without any state change.

- A child that exits before it was ever ready ends the supervisor with the child's exit
  status and no line of its own: a model that cannot load will not load on a retry either,
  and the deployer's readiness step quotes the server's last log line as the reason.
- Once a child has been ready, every exit other than our own stop restarts it, after
  0.5 s, 1 s, 2 s ... at most MAX_BACKOFF_S; a child that stayed up STABLE_S resets the delay.
- SIGTERM/SIGINT stop it: the child gets SIGTERM (uvicorn drains), the supervisor waits for it.
  `processes.stop` signals the whole process group, which reaches both at once.
- On Linux the child gets SIGTERM if the supervisor itself is killed, so no server outlives it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

log = logging.getLogger("deployer.supervisor")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0
READY_POLL_S = 0.5


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# No proxy, whatever the environment says: the server is on this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _is_ready(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _exit_status(returncode: int) -> int:
    # Popen reports death by signal N as -N; a shell would say 128 + N.
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    def __init__(self, command: list[str], ready_url: str) -> None:
        self.command = command
        self.ready_url = ready_url
        # A plain flag, not a threading.Event: it is set from a signal handler, which must
        # not take a lock the interrupted code may hold.
        self.stopping = False
        self.child: subprocess.Popen | None = None

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        self.stopping = True
        child = self.child
        if child and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def _start(self) -> subprocess.Popen:
        # Output goes where ours goes (the server's log file); same process group as ours.
        preexec = _die_with_parent if sys.platform == "linux" else None
        return subprocess.Popen(self.command, stdin=subprocess.DEVNULL, preexec_fn=preexec)

    def _wait_ready(self, child: subprocess.Popen) -> bool:
        """Poll the ready URL while the child runs: True once ready, False when it exited."""
        while child.poll() is None and not self.stopping:
            if _is_ready(self.ready_url):
                return True
            time.sleep(READY_POLL_S)
        return False

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped meanwhile; whether a stop came."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.stopping

    def run(self) -> int:
        ever_ready, backoff, restarts = False, FIRST_BACKOFF_S, 0
        while True:
            started = time.monotonic()
            self.child = child = self._start()
            if self.stopping:  # a stop arrived between the two lines above
                child.send_signal(signal.SIGTERM)
            if restarts:
                log.warning("restarted the model server: pid %d (restart %d)", child.pid, restarts)
            became_ready = self._wait_ready(child)
            if became_ready and not ever_ready:
                log.info("model server pid %d ready; supervising it", child.pid)
            ever_ready = ever_ready or became_ready
            returncode = child.wait()
            if self.stopping or not ever_ready:
                return _exit_status(returncode)
            uptime = time.monotonic() - started
            if uptime >= STABLE_S:
                backoff = FIRST_BACKOFF_S
            log.warning(
                "model server pid %d exited with status %d after %.0fs; restarting in %.1fs",
                child.pid,
                _exit_status(returncode),
                uptime,
                backoff,
            )
            if self._sleep(backoff):
                return _exit_status(returncode)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            restarts += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployer.supervisor", description=__doc__)
    parser.add_argument("--ready-url", required=True, help="200 here once the server is ready")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the serve command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise (put it after --)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    supervisor = Supervisor(command, args.ready_url)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
