"""What runs inside a worker process: a text model's step loop or an embedding model's batch loop,
each fed by preparation threads that never hold up the loop."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .core import EngineCore
from .errors import ContextLengthExceeded, EngineError, InvalidRequest
from .messages import (Abort, Accepted, CountTokens, Detokenize, Embed, Refused, RenderPrompt, Result, Submit,
                       Tokenize)
from .outbox import Outbox
from .prepare import Preparer
from .queries import answer
from .scheduler import Scheduler
from .types import Failure

log = logging.getLogger(__name__)

Send = Callable[[object], None]
PREP_THREADS = 2


class Inbox:
    """Hands prepared requests and aborts to the loop. An abort that arrives while its request is
    still being prepared marks it dead, so it is never queued."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._new: list[Any] = []
        self._aborts: list[int] = []
        self._preparing: set[int] = set()
        self._dead: set[int] = set()
        self.closing = False

    def preparing(self, rid: int) -> None:
        with self._cond:
            self._preparing.add(rid)

    def put(self, rid: int, item: Any, announce: Callable[[], None]) -> None:
        """Queue `item` unless its caller aborted meanwhile; `announce` runs first, under the lock,
        so the caller hears of its request before any of its results."""
        with self._cond:
            self._preparing.discard(rid)
            if rid in self._dead:
                self._dead.discard(rid)
                return
            announce()
            self._new.append(item)
            self._cond.notify()

    def forget(self, rid: int) -> None:
        """Preparation failed: nothing will be queued for `rid`."""
        with self._cond:
            self._preparing.discard(rid)
            self._dead.discard(rid)

    def abort(self, rid: int) -> None:
        with self._cond:
            if rid in self._preparing:
                self._dead.add(rid)
            else:
                self._aborts.append(rid)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closing = True
            self._cond.notify()

    def take(self, busy: bool) -> tuple[list[Any], list[int]] | None:
        """New items and aborts; blocks while there is nothing to do. None: shut down."""
        with self._cond:
            while not (self._new or self._aborts or busy or self.closing):
                self._cond.wait()
            if self.closing:
                return None
            new, self._new = self._new, []
            aborts, self._aborts = self._aborts, []
            return new, aborts


class GeneratorHost:
    """A text model: requests are prepared on a small thread pool; the loop runs engine steps and
    publishes their Deltas through an Outbox."""

    def __init__(self, preparer: Preparer, backend: Any, send: Send, drafter: Any = None):
        self.preparer = preparer
        self.backend = backend
        self.drafter = drafter
        spec = preparer.spec
        self.scheduler = Scheduler(backend, prefix_cache=spec.prefix_cache and not spec.deterministic,
                                   solo=spec.deterministic, lookup_draft=spec.lookup_draft, drafter=drafter)
        self.core = EngineCore(backend, self.scheduler)
        self.inbox = Inbox()
        self._send = send
        self._outbox = Outbox(send, spec.stream_interval_ms / 1000)
        self._pool = ThreadPoolExecutor(PREP_THREADS, thread_name_prefix="prepare")

    def handle(self, msg: object) -> None:
        """Called on the connection's reader thread for each message from the server."""
        if isinstance(msg, Submit):
            self.inbox.preparing(msg.rid)
            self._pool.submit(self._prepare, msg)
        elif isinstance(msg, Abort):
            self.inbox.abort(msg.rid)
        elif isinstance(msg, (CountTokens, Tokenize, Detokenize, RenderPrompt)):
            self._pool.submit(self._answer, msg)

    def _prepare(self, msg: Submit) -> None:
        try:
            seqs = self.preparer.prepare(msg.rid, msg.request)
        except Exception as exc:
            self.inbox.forget(msg.rid)
            self._send(Refused(msg.rid, as_engine_error(exc)))
            return
        self.inbox.put(msg.rid, seqs, lambda: self._send(Accepted(msg.rid, len(seqs[0].prompt))))

    def _answer(self, msg: CountTokens | Tokenize | Detokenize | RenderPrompt) -> None:
        try:
            self._send(Result(msg.rid, answer(self.preparer, msg)))
        except Exception as exc:
            self._send(Refused(msg.rid, as_engine_error(exc)))

    def run(self) -> None:
        """The step loop."""
        while (work := self.inbox.take(self.scheduler.busy)) is not None:
            new, aborts = work
            for seqs in new:
                self.scheduler.add(seqs)
            for rid in aborts:
                self.scheduler.abort(rid)
            if self.scheduler.prefilling:
                self._outbox.flush()
            self.core.step()
            self._outbox.put(self.scheduler.drain(), self.scheduler.snapshot(), idle=not self.scheduler.busy)
        self.scheduler.fail_all(Failure("model_unloaded", "the model was unloaded"))
        self._outbox.put(self.scheduler.drain(), self.scheduler.snapshot(), idle=True)

    def close(self) -> None:
        self.inbox.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def as_engine_error(exc: Exception) -> EngineError:
    if isinstance(exc, EngineError):
        return exc
    log.exception("preparing a request failed")  # a bug, not the caller's fault: a 500
    return EngineError(f"the request could not be prepared: {type(exc).__name__}: {exc}")


class EmbedderHost:
    """An embedding model: every decode packs as many queued inputs (from any number of requests)
    as fit its sequences and token budget."""

    def __init__(self, backend: Any, adds_bos: bool, max_input_tokens: int, send: Send):
        self.backend = backend
        self.inbox = Inbox()
        self._adds_bos = adds_bos
        self._max_tokens = max_input_tokens
        self._send = send
        self._pool = ThreadPoolExecutor(PREP_THREADS, thread_name_prefix="tokenize")
        self._queue: list[tuple[int, int, list[int]]] = []  # (rid, input index, tokens)
        self._jobs: dict[int, tuple[list[Any], int]] = {}  # rid -> (vectors so far, tokens read)

    def handle(self, msg: object) -> None:
        if isinstance(msg, Embed):
            self.inbox.preparing(msg.rid)
            self._pool.submit(self._tokenize, msg)
        elif isinstance(msg, Abort):
            self.inbox.abort(msg.rid)

    def _tokenize(self, msg: Embed) -> None:
        try:
            lists = [self._tokens(i, item) for i, item in enumerate(msg.inputs)]
        except Exception as exc:
            self.inbox.forget(msg.rid)
            self._send(Refused(msg.rid, as_engine_error(exc)))
            return
        self.inbox.put(msg.rid, (msg.rid, lists), lambda: None)

    def _tokens(self, i: int, item: str | list[int]) -> list[int]:
        tokens = self.backend.tokenize(item, self._adds_bos) if isinstance(item, str) else list(item)
        if not tokens:
            raise InvalidRequest(f"input[{i}] is empty", param="input")
        if any(not 0 <= t < self.backend.n_vocab for t in tokens):
            raise InvalidRequest(f"input[{i}] holds a token id outside the vocabulary", param="input")
        if len(tokens) > self._max_tokens:
            raise ContextLengthExceeded(len(tokens), self._max_tokens)
        return tokens

    def run(self) -> None:
        while (work := self.inbox.take(bool(self._queue))) is not None:
            new, aborts = work
            for rid, lists in new:
                self._jobs[rid] = ([None] * len(lists), sum(map(len, lists)))
                self._queue += [(rid, i, toks) for i, toks in enumerate(lists)]
            for rid in aborts:
                self._jobs.pop(rid, None)
                self._queue = [q for q in self._queue if q[0] != rid]
            if self._queue:
                self._embed_batch()

    def _embed_batch(self) -> None:
        batch, budget = [], self.backend.n_batch
        while self._queue and len(batch) < self.backend.n_seq and len(self._queue[0][2]) <= budget:
            budget -= len(self._queue[0][2])
            batch.append(self._queue.pop(0))
        try:
            vectors = self.backend.embed([toks for _, _, toks in batch])
        except Exception as exc:  # a failed decode fails its requests, not the worker
            log.exception("embedding decode failed")
            for rid in {rid for rid, _, _ in batch}:
                self._jobs.pop(rid, None)
                self._send(Refused(rid, EngineError(f"embedding failed: {exc}")))
            return
        for (rid, index, _), vector in zip(batch, vectors):
            job = self._jobs.get(rid)
            if job is None:
                continue
            job[0][index] = vector
            if all(v is not None for v in job[0]):
                del self._jobs[rid]
                self._send(Result(rid, (job[0], job[1])))

    def close(self) -> None:
        self.inbox.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

