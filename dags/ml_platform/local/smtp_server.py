"""The notifications' SMTP sink as a long-running process of the local platform (`make up`).

    python -m ml_platform.local.smtp_server --folder DIR --port PORT

Serves on 127.0.0.1 until SIGTERM/SIGINT and saves every message as a .eml file in DIR
(ml_platform.local.notifications.local_smtp_sink, which `make demo` runs in-process).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ml_platform.local.notifications import local_smtp_sink

log = logging.getLogger("platform.smtp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smtp_server", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with local_smtp_sink(args.folder, args.port) as sink:
        log.info("SMTP sink on 127.0.0.1:%d saving messages in %s", sink.port, sink.folder)
        while not stop.wait(1):
            pass
        log.info("stopping; %d message(s) saved this time", len(sink.received))
    return 0


if __name__ == "__main__":
    sys.exit(main())
