"""EmbeddingEngine: pooled embeddings for models marked `embedding: true`, batched across requests."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from .config import ModelSpec
from .errors import ContextLengthExceeded, InvalidRequest, Overloaded

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EmbeddingStats:
    requests: int = 0
    inputs: int = 0
    decodes: int = 0
    max_inputs_per_decode: int = 0


@dataclass(slots=True)
class _Item:
    tokens: list[int]
    vectors: list[Any]  # the job's result list; this item fills one place
    index: int
    done: Any  # callable run on the event loop once the job's last item is done


class EmbeddingEngine:
    """A worker thread owns the context; every decode packs as many queued inputs (from any
    number of requests) as fit its sequences and token budget."""

    def __init__(self, spec: ModelSpec, backend: Any, adds_bos: bool):
        self.spec = spec
        self.backend = backend
        self._adds_bos = adds_bos
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._closing = False
        self._stats = EmbeddingStats()
        self._busy = 0  # inputs in the decode under way
        self.max_queue = 64
        self.max_input_tokens = min(spec.n_ctx, backend.n_batch)
        self._thread = threading.Thread(target=self._run, name=f"embed-{spec.id}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    @property
    def pending(self) -> int:
        """Inputs queued or being embedded."""
        with self._cond:
            return len(self._queue) + self._busy

    @property
    def dimensions(self) -> int:
        return self.backend.n_embd

    def stats(self) -> EmbeddingStats:
        with self._cond:
            s = self._stats
            return EmbeddingStats(s.requests, s.inputs, s.decodes, s.max_inputs_per_decode)

    async def embed(self, inputs: list[str | list[int]]) -> tuple[list[list[float]], int]:
        """Unit vectors for each input, and the number of tokens read."""
        token_lists = await asyncio.to_thread(self._tokenize_all, inputs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        vectors: list[Any] = [None] * len(token_lists)
        remaining = [len(token_lists)]

        def one_done() -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and not future.done():
                future.set_result(None)

        items = [_Item(toks, vectors, i, lambda: loop.call_soon_threadsafe(one_done))
                 for i, toks in enumerate(token_lists)]
        with self._cond:
            if self._closing:
                raise Overloaded(self.spec.id)
            self._queue.extend(items)
            self._stats.requests += 1
            self._cond.notify()
        await future
        if any(isinstance(v, Exception) for v in vectors):
            raise next(v for v in vectors if isinstance(v, Exception))
        return vectors, sum(len(t) for t in token_lists)

    def _tokenize_all(self, inputs: list[str | list[int]]) -> list[list[int]]:
        out = []
        for i, item in enumerate(inputs):
            tokens = self.backend.tokenize(item, self._adds_bos) if isinstance(item, str) else list(item)
            if not tokens:
                raise InvalidRequest(f"input[{i}] is empty", param="input")
            if any(not 0 <= t < self.backend.n_vocab for t in tokens):
                raise InvalidRequest(f"input[{i}] holds a token id outside the vocabulary", param="input")
            if len(tokens) > self.max_input_tokens:
                raise ContextLengthExceeded(len(tokens), self.max_input_tokens)
            out.append(tokens)
        return out

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
                batch, budget = [], self.backend.n_batch
                while self._queue and len(batch) < self.backend.n_seq and len(self._queue[0].tokens) <= budget:
                    budget -= len(self._queue[0].tokens)
                    batch.append(self._queue.pop(0))
                self._busy = len(batch)
            try:
                results: list[Any] = self.backend.embed([item.tokens for item in batch])
            except Exception as exc:  # a failed decode fails its requests, not the worker
                log.exception("embedding decode failed")
                results = [exc] * len(batch)
            with self._cond:
                self._busy = 0
                self._stats.decodes += 1
                self._stats.inputs += len(batch)
                self._stats.max_inputs_per_decode = max(self._stats.max_inputs_per_decode, len(batch))
            for item, result in zip(batch, results):
                item.vectors[item.index] = result
                item.done()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.backend.close()
