"""What the server waits for from a worker: calls awaiting one answer (a submit's acceptance, a
count, embeddings) and generations awaiting their Deltas, by request id."""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import EngineError
from .generation import Generation
from .types import Failure


class Pending:
    def __init__(self) -> None:
        self.calls: dict[int, asyncio.Future] = {}
        self.streams: dict[int, Generation] = {}

    def __len__(self) -> int:
        """Requests sent and not finished (preparing, queued or running)."""
        return len(self.calls.keys() | self.streams.keys())

    def resolve(self, rid: int, value: Any) -> None:
        future = self.calls.get(rid)
        if future is not None and not future.done():
            future.set_result(value)

    def reject(self, rid: int, error: BaseException) -> None:
        future = self.calls.get(rid)
        if future is not None and not future.done():
            future.set_exception(error)

    def deliver(self, deltas: list) -> None:
        """One step's (rid, Delta) pairs, handed to their generations in order."""
        by_rid: dict[int, list] = {}
        for rid, delta in deltas:
            by_rid.setdefault(rid, []).append(delta)
        for rid, batch in by_rid.items():
            gen = self.streams.get(rid)
            if gen is None:
                continue
            gen.push(batch)
            if gen.finished:
                del self.streams[rid]

    def fail_all(self, error: EngineError, failure: Failure) -> None:
        """Every call raises `error`; every generation ends with `failure`."""
        for future in self.calls.values():
            if not future.done():
                future.set_exception(error)
        for gen in self.streams.values():
            gen.fail(failure)
        self.streams.clear()
