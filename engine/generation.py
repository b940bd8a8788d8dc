"""The caller's handle on one submitted request: an async iterator of Deltas."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .types import Delta, ToolCall, Usage

if TYPE_CHECKING:
    from .engine import Engine


class Generation:
    """Iterate to receive Deltas, tagged with their choice; each choice ends with a Delta that has
    finish_reason and that choice's usage. close() aborts the request if it is still running (a
    client went away), freeing its KV cells at the next step."""

    def __init__(self, engine: Engine, seq_ids: list[int], prompt_tokens: int, queue: asyncio.Queue[Delta]):
        self.ids = seq_ids
        self.n = len(seq_ids)  # choices; the generation is over when each has finished
        self.prompt_tokens = prompt_tokens
        self._engine = engine
        self._queue = queue
        self._finished = 0
        self._done = False

    def _note(self, delta: Delta) -> None:
        if delta.finish_reason is not None:
            self._finished += 1
            self._done = self._finished == self.n

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Delta:
        if self._done:
            raise StopAsyncIteration
        delta = await self._queue.get()
        self._note(delta)
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
        self._note(first)
        while not self._done and not queue.empty():
            delta = queue.get_nowait()
            self._note(delta)
            deltas.append(delta)
        return deltas

    @property
    def done(self) -> bool:
        return self._done

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._engine.abort(self.ids)


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


def usage_of(finals: list[Delta], n: int) -> Usage:
    """A request's usage from its choices' final Deltas (n choices per prompt): each prompt and
    its cache hits once (its first choice), every choice's completion and reasoning tokens."""
    usages = [f.usage or Usage() for f in finals]
    firsts = [u for f, u in zip(finals, usages) if f.choice % n == 0]
    return Usage(prompt_tokens=sum(u.prompt_tokens for u in firsts),
                 cached_tokens=sum(u.cached_tokens for u in firsts),
                 completion_tokens=sum(u.completion_tokens for u in usages),
                 reasoning_tokens=sum(u.reasoning_tokens for u in usages))
