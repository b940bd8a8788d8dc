"""Model id/alias -> engine: loaded on first use (or at start-up), unloaded when idle or when the
memory budget needs room, least recently used first."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .backend import Backend
from .chat_template import ChatTemplate
from .config import ModelsConfig, ModelSpec
from .embeddings import EmbeddingEngine
from .engine import Engine
from .errors import InvalidRequest, ModelNotFound
from .sources import resolve

log = logging.getLogger(__name__)
AnyEngine = Engine | EmbeddingEngine


def load_engine(spec: ModelSpec) -> AnyEngine:
    """Resolve the GGUF, load it into llama.cpp and start the engine's worker (blocking)."""
    path = resolve(spec.id, spec.source)
    backend = Backend(
        path,
        n_ctx_per_seq=spec.n_ctx,
        n_seq=spec.parallel,
        # Pooled embeddings need each input whole in one decode.
        n_batch=max(spec.n_batch, spec.n_ctx) if spec.embedding else spec.n_batch,
        n_threads=spec.n_threads,
        n_gpu_layers=spec.n_gpu_layers,
        kv_unified=spec.kv_unified,
        embeddings=spec.embedding,
        model_id=spec.id,
    )
    if spec.embedding:
        return EmbeddingEngine(spec, backend, adds_bos=backend.adds_bos)
    if spec.n_ctx > backend.n_ctx_train > 0:
        log.warning("%s: n_ctx %d is beyond the %d tokens it was trained on", spec.id, spec.n_ctx, backend.n_ctx_train)
    template = ChatTemplate(
        spec.chat_template or backend.meta("tokenizer.chat_template"),
        bos_token=backend.token_text(backend.bos) if backend.bos >= 0 else "",
        eos_token=backend.token_text(backend.eos) if backend.eos >= 0 else "",
    )
    return Engine(spec, backend, template, bos_text=template.bos_token, adds_bos=backend.adds_bos)


def is_idle(engine: AnyEngine) -> bool:
    if isinstance(engine, Engine):
        stats = engine.stats()
        return stats.running == 0 and stats.waiting == 0
    return engine.pending == 0


class Registry:
    def __init__(self, config: ModelsConfig, loader: Callable[[ModelSpec], AnyEngine] = load_engine,
                 max_queue: int | None = None, memory_budget: int | None = None):
        self.config = config
        self._loader = loader
        self._max_queue = max_queue
        self._budget = memory_budget  # bytes for all loaded models; None: no limit
        self._by_name = {name: spec for spec in config.models for name in (spec.id, *spec.aliases)}
        self._engines: dict[str, AnyEngine] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_used: dict[str, float] = {}
        self.load_seconds: dict[str, float] = {}

    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        return self.config.models

    def spec(self, name: str) -> ModelSpec:
        spec = self._by_name.get(name)
        if spec is None:
            raise ModelNotFound(name)
        return spec

    def loaded(self, model_id: str) -> AnyEngine | None:
        return self._engines.get(model_id)

    async def get(self, name: str) -> Engine:
        """The generating engine for `name`; an embedding model is a 400 here."""
        engine = await self.get_any(name)
        if not isinstance(engine, Engine):
            raise InvalidRequest(f"model '{name}' is an embedding model: use /v1/embeddings", param="model")
        return engine

    async def get_embedder(self, name: str) -> EmbeddingEngine:
        engine = await self.get_any(name)
        if not isinstance(engine, EmbeddingEngine):
            raise InvalidRequest(f"model '{name}' is not marked for embeddings (embedding: true in models.yaml)",
                                 param="model")
        return engine

    async def get_any(self, name: str) -> AnyEngine:
        """Load on first use; concurrent first requests wait for one load. A load failure is an
        error for this model alone, and the next request tries again."""
        spec = self.spec(name)
        self._last_used[spec.id] = time.monotonic()
        engine = self._engines.get(spec.id)
        if engine is not None:
            return engine
        async with self._locks.setdefault(spec.id, asyncio.Lock()):
            engine = self._engines.get(spec.id)
            if engine is None:
                started = time.perf_counter()
                engine = await asyncio.to_thread(self._loader, spec)
                self.load_seconds[spec.id] = time.perf_counter() - started
                log.info("loaded %s in %.2f s", spec.id, self.load_seconds[spec.id])
                if self._max_queue is not None:
                    engine.max_queue = self._max_queue
                self._engines[spec.id] = engine
                await self._fit_budget(keep=spec.id)
        self._last_used[spec.id] = time.monotonic()
        return engine

    async def preload(self) -> None:
        """Load the default model and every model marked preload; failures are logged, not fatal."""
        names = [self.config.default, *(s.id for s in self.specs if s.preload and s.id != self.config.default)]
        for name in names:
            try:
                await self.get_any(name)
            except Exception:
                log.exception("model %r failed to load at start-up", name)

    async def unload_idle(self) -> list[str]:
        """Unload models idle past their keep_alive (the default model stays)."""
        now = time.monotonic()
        done = []
        for spec in self.specs:
            engine = self._engines.get(spec.id)
            if (engine is None or spec.keep_alive is None or spec.id == self.spec(self.config.default).id
                    or now - self._last_used.get(spec.id, now) < spec.keep_alive or not is_idle(engine)):
                continue
            await self._unload(spec.id, "idle")
            done.append(spec.id)
        return done

    async def _fit_budget(self, keep: str) -> None:
        """Unload idle models, least recently used first, while the loaded ones exceed the budget."""
        if self._budget is None:
            return
        for model_id in sorted(self._engines, key=lambda m: self._last_used.get(m, 0.0)):
            if sum(getattr(e.backend, "memory_bytes", 0) for e in self._engines.values()) <= self._budget:
                return
            default = self.spec(self.config.default).id
            if model_id not in (keep, default) and is_idle(self._engines[model_id]):
                await self._unload(model_id, "memory budget")

    async def _unload(self, model_id: str, why: str) -> None:
        engine = self._engines.pop(model_id)
        log.info("unloading %s (%s)", model_id, why)
        await asyncio.to_thread(engine.close)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
