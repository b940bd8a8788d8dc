"""The caller's handle on one submitted request: an async iterator of Deltas."""

from __future__ import annotations

import asyncio
from typing import Callable

from .types import Delta, Failure, FinishReason, ToolCall, Usage


class Generation:
    """Iterate to receive Deltas, tagged with their choice; each choice ends with a Delta that has
    finish_reason and that choice's usage. close() aborts the request if it is still running (a
    client went away); its worker then reports what it had spent, which settle() waits for."""

    def __init__(self, n: int, abort: Callable[[], None], prompt_tokens: int = 0):
        self.n = n  # choices; the generation is over when each has finished
        self.prompt_tokens = prompt_tokens
        self.finals: list[Delta] = []  # each choice's last Delta, as they arrive
        self._abort = abort
        self._queue: asyncio.Queue[Delta] = asyncio.Queue()
        self._taken_finals = 0  # finals handed to the reader
        self._closed = False
        self._settled = asyncio.Event()

    # --- fed by the engine client ------------------------------------------------------------

    def push(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            if delta.finish_reason is not None:
                self.finals.append(delta)
            if not self._closed:
                self._queue.put_nowait(delta)
        if len(self.finals) >= self.n:
            self._settled.set()

    def fail(self, failure: Failure) -> None:
        """The worker is gone: every unfinished choice ends now with `failure`."""
        done = {f.choice for f in self.finals}
        self.push([Delta(choice=c, finish_reason=FinishReason.ERROR, failure=failure, usage=Usage())
                   for c in range(self.n) if c not in done])

    @property
    def finished(self) -> bool:
        return self._settled.is_set()

    # --- read by the caller ------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every choice's final Delta has been handed to the reader (or the reader gave up)."""
        return self._closed or self._taken_finals >= self.n

    def _took(self, delta: Delta) -> Delta:
        if delta.finish_reason is not None:
            self._taken_finals += 1
        return delta

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Delta:
        if self.done:
            raise StopAsyncIteration
        return self._took(await self._queue.get())

    async def next_batch(self, timeout: float | None = None) -> list[Delta] | None:
        """Every Delta ready now, waiting for at least one; None if `timeout` passed with none.
        Taking a step's tokens together lets a stream write them in one go."""
        if self.done:
            return []
        queue = self._queue
        if queue.empty():
            try:
                first = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                return None
        else:
            first = queue.get_nowait()
        deltas = [self._took(first)]
        while not self.done and not queue.empty():
            deltas.append(self._took(queue.get_nowait()))
        return deltas

    def close(self) -> None:
        """Stop reading; a request still running is aborted and frees its KV cells."""
        if not self._closed:
            self._closed = True
            if not self.finished:
                self._abort()

    async def settle(self, timeout: float = 5.0) -> list[Delta]:
        """Close, then wait (bounded) until every choice has reported its final usage, so what an
        aborted request spent is still counted. The finals known by then."""
        self.close()
        if not self.finished:
            try:
                await asyncio.wait_for(self._settled.wait(), timeout)
            except TimeoutError:
                pass
        return self.finals


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
