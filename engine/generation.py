"""The caller's handle on one submitted request: an async iterator of Deltas."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .types import Delta, ToolCall

if TYPE_CHECKING:
    from .engine import Engine


class Generation:
    """Iterate to receive Deltas; the last one has finish_reason and usage. close() aborts the
    request if it is still running (a client went away), freeing its KV cells at the next step."""

    def __init__(self, engine: Engine, seq_id: int, prompt_tokens: int, queue: asyncio.Queue[Delta]):
        self.id = seq_id
        self.prompt_tokens = prompt_tokens
        self._engine = engine
        self._queue = queue
        self._done = False

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Delta:
        if self._done:
            raise StopAsyncIteration
        delta = await self._queue.get()
        if delta.finish_reason is not None:
            self._done = True
        return delta

    async def next_batch(self, timeout: float | None = None) -> list[Delta] | None:
        """Every Delta ready now, waiting for at least one; None if `timeout` passed with none.
        Taking a step's tokens together lets a stream write them in one go."""
        if self._done:
            return []
        queue = self._queue
        if queue.empty():
            try:
                first = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                return None
        else:
            first = queue.get_nowait()
        deltas = [first]
        while first.finish_reason is None and not queue.empty():
            first = queue.get_nowait()
            deltas.append(first)
        if first.finish_reason is not None:
            self._done = True
        return deltas

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._engine.abort(self.id)

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def assemble(deltas: list[Delta]) -> tuple[str, list[ToolCall]]:
    """A whole generation's text and its tool calls, from its Deltas."""
    text: list[str] = []
    calls: list[ToolCall] = []
    for delta in deltas:
        text.append(delta.text)
        part = delta.tool_call
        if part is None:
            continue
        if part.name is not None:
            calls.append(ToolCall(id=part.id or "", name=part.name, arguments=""))
        calls[part.index].arguments += part.arguments
    return "".join(text), calls
