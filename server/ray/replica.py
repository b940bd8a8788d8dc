"""One replica of the Ray Serve deployment: a Registry of its own (a worker process per loaded
model, as in a plain ggserve), driven by the ingress through a deployment handle.

Every call answers with plain engine types (GenerateRequest in, Delta batches out), which Ray
pickles as the worker link does; the protocols stay in the ingress, in server/'s translators."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from engine import EngineError, EngineStats, GenerateRequest, ModelsConfig, Registry

from ..app import unload_idle_models


class Replica:
    """The deployment's class body; server/ray/app.py wraps it with serve.deployment."""

    async def __init__(self, config: ModelsConfig, max_queue: int = 64, log_level: str = "INFO",
                       memory_budget: int | None = None):
        logging.basicConfig(level=log_level.upper())
        self.registry = Registry(config, max_queue=max_queue, log_level=log_level, memory_budget=memory_budget)
        self.name = _replica_name()
        await self.registry.preload()  # the replica is ready once its default model is
        self._reaper = asyncio.create_task(unload_idle_models(self.registry))

    async def generate(self, model: str, request: GenerateRequest, prefix: list[str] | None = None
                       ) -> AsyncIterator[tuple[str, Any]]:
        """("accepted", (replica, prompt_tokens, n)) once the request is queued, then
        ("deltas", [...]) batches; ("refused", EngineError) instead when it is not taken.
        `prefix` is for the router (server/ray/router.py). Cancelling the call aborts the
        request, which frees its sequence."""
        try:
            async with self.registry.use(model) as engine:
                gen = await engine.submit(request)
        except EngineError as exc:
            yield "refused", exc
            return
        try:
            yield "accepted", (self.name, gen.prompt_tokens, gen.n)
            sent = False
            while batch := await gen.next_batch():
                if not sent and any(d.failure is not None and d.failure.code == "model_unloaded" for d in batch):
                    yield "gone", "the replica is shutting down"  # unstarted: the ingress resends it
                    return
                sent = True
                yield "deltas", batch
            yield "stats", (self.name, engine.stats())
        finally:
            gen.close()

    async def call(self, model: str, method: str, *args: Any, embedding: bool = False,
                   replica: str | None = None) -> tuple[str, Any]:
        """The engine's other calls (count_tokens, embed, tokenizer.*, info, stats), as
        ("ok", result) or ("refused", EngineError). `replica` is for the router."""
        if method == "stats":  # a look only: it must neither load a model nor keep one loaded
            engine = self.registry.loaded(self.registry.spec(model).id)
            return "ok", (self.name, engine.stats() if engine is not None else EngineStats(free_slots=0))
        try:
            async with self.registry.use(model, embedding) as engine:
                if method == "info":
                    return "ok", (self.name, engine.info)
                target = engine.tokenizer if method.startswith("tokenizer.") else engine
                return "ok", await getattr(target, method.removeprefix("tokenizer."))(*args)
        except EngineError as exc:
            return "refused", exc

    async def check_health(self) -> None:
        """Ray Serve replaces a replica whose check fails: here, one whose default model cannot
        be loaded any more (its worker crashing faster than it restarts)."""
        if self.registry.loaded(self.registry.default_id) is None:
            await self.registry.get_any(self.registry.default_id)

    async def __del__(self) -> None:
        self._reaper.cancel()
        await self.registry.close()


def _replica_name() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a Serve replica (unit tests)
        return "local"
