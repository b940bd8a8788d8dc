"""Model id/alias -> Engine, loading each model on first use."""

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


def load_engine(spec: ModelSpec) -> Engine | EmbeddingEngine:
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


class Registry:
    def __init__(self, config: ModelsConfig, loader: Callable[[ModelSpec], Engine | EmbeddingEngine] = load_engine,
                 max_queue: int | None = None):
        self.config = config
        self._max_queue = max_queue
        self._loader = loader
        self._by_name = {name: spec for spec in config.models for name in (spec.id, *spec.aliases)}
        self._engines: dict[str, Engine | EmbeddingEngine] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.load_seconds: dict[str, float] = {}

    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        return self.config.models

    def spec(self, name: str) -> ModelSpec:
        spec = self._by_name.get(name)
        if spec is None:
            raise ModelNotFound(name)
        return spec

    def loaded(self, model_id: str) -> Engine | EmbeddingEngine | None:
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

    async def get_any(self, name: str) -> Engine | EmbeddingEngine:
        spec = self.spec(name)
        engine = self._engines.get(spec.id)
        if engine is not None:
            return engine
        lock = self._locks.setdefault(spec.id, asyncio.Lock())
        async with lock:  # concurrent first requests wait for one load, not start several
            engine = self._engines.get(spec.id)
            if engine is None:
                started = time.perf_counter()
                engine = await asyncio.to_thread(self._loader, spec)
                self.load_seconds[spec.id] = time.perf_counter() - started
                if self._max_queue is not None:
                    engine.max_queue = self._max_queue
                self._engines[spec.id] = engine
        return engine

    async def get_default(self) -> Engine | EmbeddingEngine:
        return await self.get_any(self.config.default)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
