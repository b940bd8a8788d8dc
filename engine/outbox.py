"""What the step loop sends the server. A step's Deltas may be held for up to `interval` seconds
and sent together, consecutive text merged: every message wakes the server's reader thread, its
event loop and each client, and on a small machine those wake-ups run on the cores the decode
needs. A choice's first text (its first answer after reasoning too) and its end are never held
(time to first token, end of reply), nor is anything once the loop runs out of work or before a
step that prefills (a prompt chunk can take far longer than the interval)."""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Callable

from .messages import Step
from .types import Delta, EngineStats


class Outbox:
    def __init__(self, send: Callable[[object], None], interval: float, clock: Callable[[], float] = time.monotonic):
        self._send = send
        self.interval = interval  # seconds; 0: every step is sent as it ends
        self._clock = clock
        self._held: list[tuple[int, Delta]] = []
        self._streaming: set[tuple[int, int, bool]] = set()  # (request, choice, reasoning?) begun
        self._sent_at = clock()
        self._stats: EngineStats | None = None

    def put(self, deltas: list[tuple[int, Delta]], stats: EngineStats, idle: bool) -> None:
        """One step's output and the counters after it; `idle`: the loop has nothing left to run."""
        self._held += deltas
        urgent = [self._urgent(rid, delta) for rid, delta in deltas]  # each one looked at: it notes firsts
        now = self._clock()
        if idle or any(urgent) or now - self._sent_at >= self.interval:
            self._send_held(stats, now)

    def flush(self) -> None:
        """Send what is held now (the next step is a long one)."""
        if self._held:
            self._send_held(self._stats, self._clock())

    def _send_held(self, stats: EngineStats | None, now: float) -> None:
        if self._held or stats != self._stats:
            self._send(Step(coalesce(self._held), stats))
            self._stats = stats
        self._held = []
        self._sent_at = now

    def _urgent(self, rid: int, delta: Delta) -> bool:
        if delta.finish_reason is not None:
            self._streaming.difference_update({(rid, delta.choice, False), (rid, delta.choice, True)})
            return True
        if not (delta.text or delta.reasoning or delta.tool_call):
            return False  # what a request reports before its first text waits for that text
        key = (rid, delta.choice, bool(delta.reasoning) and not delta.text)
        if key in self._streaming:
            return False
        self._streaming.add(key)
        return True


def coalesce(deltas: list[tuple[int, Delta]]) -> list[tuple[int, Delta]]:
    """The same Deltas with each choice's runs of plain text (or of plain reasoning) joined into
    one, their logprobs kept token by token; order within a choice is kept."""
    out: list[tuple[int, Delta]] = []
    last: dict[tuple[int, int], int] = {}  # (request, choice) -> index in out of its latest Delta
    for rid, delta in deltas:
        key = (rid, delta.choice)
        i = last.get(key)
        if i is not None and _joinable(out[i][1], delta):
            out[i] = (rid, _join(out[i][1], delta))
            continue
        last[key] = len(out)
        out.append((rid, delta))
    return out


def _joinable(a: Delta, b: Delta) -> bool:
    plain = _plain(a) and _plain(b)
    same_kind = (not a.reasoning and not b.reasoning) or (not a.text and not b.text)
    return plain and same_kind and (a.logprobs is None) == (b.logprobs is None)


# Anything else a Delta carries (a tool call, usage, an end) keeps it apart, fields added later too.
_JOINED = ("text", "reasoning", "choice", "logprobs")
_OTHER_FIELDS = tuple((f.name, f.default) for f in fields(Delta) if f.name not in _JOINED)


def _plain(delta: Delta) -> bool:
    return all(getattr(delta, name) == default for name, default in _OTHER_FIELDS)


def _join(a: Delta, b: Delta) -> Delta:
    logprobs = a.logprobs + b.logprobs if a.logprobs is not None and b.logprobs is not None else None
    return Delta(text=a.text + b.text, reasoning=a.reasoning + b.reasoning, choice=a.choice, logprobs=logprobs)
