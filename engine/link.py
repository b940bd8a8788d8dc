"""The two threads over a worker's connection, on the server's side: a writer that sends pickled
messages in order, and a reader that hands each message to the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable


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
            except (OSError, ValueError):
                return  # the worker is gone; the reader reports it
            if data is self._last:
                return

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            self._loop.call_soon_threadsafe(self._on_message, msg)
        self._on_closed()
        self._conn.close()
