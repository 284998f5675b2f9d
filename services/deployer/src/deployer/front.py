"""The stable local endpoint: a TCP proxy to whichever model server the state file names.

Locally each version runs on its own port, because the new server must be up and smoke-tested
before the old one stops. The front keeps one port for the model's whole life, so the URL in
XCom, in the state file and in clients never changes, like a Kubernetes Service. It forwards
bytes, not HTTP: a new connection goes to the server named at connect time; a keep-alive
connection stays with its server until that server closes it (uvicorn does when stopped).

Run by the local target as `python -m deployer.front --state-file F --port P`; it exits by
itself once the state file is gone or names another running front.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from deployer import processes

log = logging.getLogger("deployer.front")

CONNECT_TIMEOUT_S = 5.0
OWNER_CHECK_INTERVAL_S = 2.0
CHUNK = 64 * 1024
UPSTREAM_HOST = "127.0.0.1"


def _bad_gateway(why: str) -> bytes:
    body = json.dumps({"error_code": "BAD_GATEWAY", "message": why}).encode()
    head = (
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Upstream:
    """The serving port from the state file, re-read only when the file changes."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._seen: tuple[int, int, int] | None = None
        self.port: int | None = None
        self.front_pid: int | None = None

    def refresh(self) -> bool:
        """False once the state file is gone."""
        try:
            stat = os.stat(self.state_file)
        except FileNotFoundError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                state = json.loads(self.state_file.read_text())
            except (OSError, ValueError):
                return True  # replaced while we read it: the next connection re-reads
            self._seen = seen
            self.port = (state.get("server") or {}).get("port")
            self.front_pid = (state.get("front") or {}).get("pid")
        return True


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


async def _handle(
    upstream: Upstream, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    upstream.refresh()
    port = upstream.port
    try:
        if port is None:
            raise ConnectionRefusedError("no model server is serving yet")
        server_reader, server_writer = await asyncio.wait_for(
            asyncio.open_connection(UPSTREAM_HOST, port), CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        log.warning("upstream %s unreachable: %s", port, exc)
        client_writer.write(_bad_gateway(f"model server on port {port} unreachable: {exc}"))
        client_writer.close()
        return
    await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))


def _replaced_by(pid: int | None) -> bool:
    return pid is not None and pid != os.getpid() and processes.alive(pid)


async def _run(state_file: Path, port: int) -> None:
    upstream = Upstream(state_file)
    server = await asyncio.start_server(
        lambda r, w: _handle(upstream, r, w), host="127.0.0.1", port=port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("front on 127.0.0.1:%d following %s", port, state_file)
    async with server:
        while not stop.is_set():
            # Exit when the state was removed or another live front took over. A dead pid
            # there is the front this one replaces: the deployer records ours right after.
            if not upstream.refresh() or _replaced_by(upstream.front_pid):
                log.info("state file gone or another front took over: stopping")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), OWNER_CHECK_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployer.front", description=__doc__)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        from uvloop import run  # uvicorn's fast event loop, when installed
    except ImportError:
        from asyncio import run
    run(_run(args.state_file, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
