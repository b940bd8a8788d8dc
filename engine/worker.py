"""A model's worker process (`python -m engine.worker FD`): it loads one model and serves it over
the connection on file descriptor FD until the server says Shutdown or goes away.

A native fault in llama.cpp (an abort, a segfault, a stack overflow, an out-of-memory kill) ends
this process alone; the server sees the connection close and fails the requests it held here.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Callable

from .errors import EngineError, ModelLoadFailed
from .messages import LoadFailed, Ready, Shutdown, Start

log = logging.getLogger(__name__)


class Sender:
    """Messages to the server come from the loop and the preparation threads: one at a time."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, msg: object) -> None:
        with self._lock:
            self._conn.send(msg)


def serve(conn: Connection, start: Start, on_lost: Callable[[], None] | None = None) -> None:
    """Load the model, answer Ready (or LoadFailed), then run until Shutdown. `on_lost` runs when
    the server's end of the connection closes (by default the loop just ends)."""
    from .loader import load_host

    send = Sender(conn)
    try:
        host, info = load_host(start, send)
    except Exception as exc:
        error = exc if isinstance(exc, EngineError) else ModelLoadFailed(start.spec.id, f"{type(exc).__name__}: {exc}")
        log.error("loading %s failed: %s", start.spec.id, error)
        send(LoadFailed(error))
        return
    send(Ready(info))
    reader = threading.Thread(target=_read, args=(conn, host, on_lost), name="inbox", daemon=True)
    reader.start()
    try:
        host.run()
    finally:
        host.backend.close()
        if getattr(host, "drafter", None) is not None:
            host.drafter.close()


def serve_connection(conn: Connection) -> None:
    """The worker on a thread (tests): the same protocol; a lost server just ends the thread."""
    try:
        serve(conn, conn.recv())
    finally:
        conn.close()


def _read(conn: Connection, host, on_lost: Callable[[], None] | None) -> None:
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            (on_lost or host.close)()
            return
        if isinstance(msg, Shutdown):
            host.close()
            return
        host.handle(msg)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # The server decides when this process ends (Shutdown, or its own exit closing the connection):
    # a Ctrl-C or a service manager's SIGTERM to the whole group must not cut in-flight requests
    # short while the server drains them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    start: Start = conn.recv()
    logging.basicConfig(level=start.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s %(name)s [worker {start.spec.id} %(process)d] %(message)s")
    faulthandler.enable()  # a native crash leaves a Python traceback in the log
    serve(conn, start, on_lost=lambda: os._exit(0))
    conn.close()
    logging.shutdown()
    os._exit(0)  # preparation threads may still be busy with a request nobody waits for


if __name__ == "__main__":
    main()
