"""The two threads over a worker's connection, on the server's side: a writer that sends pickled
messages in order, and a reader that hands each message to the event loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable

log = logging.getLogger(__name__)


class Link:
    def __init__(self, conn, loop: asyncio.AbstractEventLoop, on_message: Callable[[Any], None],
                 on_closed: Callable[[], None]):
        self._conn = conn
        self._loop = loop
        self._on_message = on_message  # called on the loop
        self._on_closed = on_closed  # called on the reader thread once the worker's end is gone
        self._outgoing: queue.SimpleQueue = queue.SimpleQueue()
        self._last: bytes | None = None

    def start(self, name: str) -> None:
        threading.Thread(target=self._read, name=f"from-{name}", daemon=True).start()
        threading.Thread(target=self._write, name=f"to-{name}", daemon=True).start()

    def send(self, msg: Any, last: bool = False) -> None:
        """Pickled here, in the caller, so a message that cannot be pickled (RecursionError, say)
        fails alone instead of stopping the writer thread. `last`: the writer stops after it."""
        data = ForkingPickler.dumps(msg)
        if last:
            self._last = data
        self._outgoing.put(data)

    def _write(self) -> None:
        while True:
            data = self._outgoing.get()
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError, TypeError):  # TypeError: the reader closed it meanwhile
                return  # the worker is gone; the reader reports it
            if data is self._last:
                return

    def _read(self) -> None:
        """Until the connection ends, or anything else goes wrong here: then the connection is
        closed (a worker still running sees it and exits) and `on_closed` runs, so nothing waits
        on a worker nobody listens to."""
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that does not unpickle, say
                log.exception("a message from the worker could not be read; dropping its connection")
                break
            try:
                self._loop.call_soon_threadsafe(self._on_message, msg)
            except RuntimeError:  # the event loop is closed: the server is going down
                break
        self._conn.close()
        self._on_closed()
