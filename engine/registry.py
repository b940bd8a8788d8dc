"""Model id/alias -> its worker: loaded on first use (or at start-up), unloaded when idle or when
the memory budget needs room, least recently used first, and restarted when it crashes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator

from .client import EngineClient
from .config import ModelsConfig, ModelSpec
from .errors import InvalidRequest, ModelNotFound, Overloaded
from .launch import Launcher, ProcessLauncher

log = logging.getLogger(__name__)

# A crash soon after the previous one waits before the next start, doubling up to the cap.
CRASH_WINDOW_S = 60.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


@dataclass(slots=True)
class Crashes:
    count: int = 0  # restarts since the server started
    last_at: float = 0.0  # monotonic time of the last crash
    last_reason: str = ""
    backoff: float = 0.0  # seconds the next start waits after the last crash

    def record(self, reason: str, now: float) -> None:
        repeated = self.count and now - self.last_at < CRASH_WINDOW_S
        self.backoff = min(MAX_BACKOFF_S, self.backoff * 2 or FIRST_BACKOFF_S) if repeated else 0.0
        self.count += 1
        self.last_at, self.last_reason = now, reason

    def wait_left(self, now: float) -> float:
        return max(0.0, self.last_at + self.backoff - now) if self.count else 0.0


class Registry:
    def __init__(self, config: ModelsConfig, launcher: Launcher | None = None, *, max_queue: int | None = None,
                 memory_budget: int | None = None, log_level: str = "INFO", backend: str | None = None):
        self.config = config
        self._launcher = launcher or ProcessLauncher()
        self._max_queue = max_queue
        self._budget = memory_budget  # bytes for all loaded models; None: no limit
        self._log_level = log_level
        self._backend = backend  # a stand-in backend for tests ("module:factory"); None: llama.cpp
        self._clients: dict[str, EngineClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_used: dict[str, float] = {}
        self._restarts: set[asyncio.Task] = set()
        self.crashes: dict[str, Crashes] = {}
        self.load_seconds: dict[str, float] = {}

    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        return self.config.models

    @property
    def default_id(self) -> str:
        return self.spec(self.config.default).id

    def spec(self, name: str) -> ModelSpec:
        spec = self.config.find(name)  # ids and aliases, then alias patterns
        if spec is None:
            raise ModelNotFound(name)
        return spec

    def loaded(self, model_id: str) -> EngineClient | None:
        client = self._clients.get(model_id)
        return client if client is not None and client.alive else None

    @contextlib.asynccontextmanager
    async def use(self, name: str, embedding: bool = False) -> AsyncIterator[EngineClient]:
        """The engine for `name`, held loaded until the block ends: a handler keeps it from
        lookup to submit, and the generation then keeps it until it finishes."""
        client = await self.get_any(name)
        if client.spec.embedding != embedding:
            raise InvalidRequest(f"model '{name}' is an embedding model: use /v1/embeddings" if client.spec.embedding
                                 else f"model '{name}' is not marked for embeddings (embedding: true in models.yaml)",
                                 param="model")
        client.leases += 1
        try:
            yield client
        finally:
            client.leases -= 1

    async def get_any(self, name: str) -> EngineClient:
        """Load on first use; concurrent first requests wait for one load. A load failure is an
        error for this model alone, and the next request tries again."""
        spec = self.spec(name)
        self._last_used[spec.id] = time.monotonic()
        client = self.loaded(spec.id)
        if client is None:
            async with self._locks.setdefault(spec.id, asyncio.Lock()):
                client = self.loaded(spec.id) or await self._load(spec)
        self._last_used[spec.id] = time.monotonic()
        return client

    async def _load(self, spec: ModelSpec) -> EngineClient:
        wait = self.crashes.get(spec.id, Crashes()).wait_left(time.monotonic())
        if wait > 0:
            raise Overloaded(spec.id, retry_after=wait, why="crashed repeatedly and is restarting")
        client = EngineClient(spec, self._launcher, log_level=self._log_level, backend=self._backend,
                              on_exit=self._worker_died, **({"max_queue": self._max_queue} if self._max_queue else {}))
        started = time.perf_counter()
        await client.start()
        self.load_seconds[spec.id] = time.perf_counter() - started
        log.info("loaded %s in %.2f s (worker pid %d)", spec.id, self.load_seconds[spec.id], client.pid)
        self._clients[spec.id] = client
        await self._fit_budget(keep=spec.id)
        return client

    def _worker_died(self, client: EngineClient, reason: str) -> None:
        model = client.spec.id
        if self._clients.get(model) is client:
            del self._clients[model]
        crashes = self.crashes.setdefault(model, Crashes())
        crashes.record(reason, time.monotonic())
        log.error("model %s: worker %s (restart %d%s)", model, reason, crashes.count,
                  f", next start in {crashes.backoff:.0f} s" if crashes.backoff else "")
        if model == self.default_id:  # /health depends on it: back at once (after any back-off)
            task = asyncio.get_running_loop().create_task(self._restart(model, crashes.backoff))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    async def _restart(self, model: str, delay: float) -> None:
        """Start `model` again, retrying with back-off while its start fails."""
        crashes = self.crashes.setdefault(model, Crashes())
        while True:
            await asyncio.sleep(delay)
            # A timer may fire a hair before the clock says the back-off is over; the load would
            # then be refused as still backing off and count as a failed start, doubling the
            # back-off, and with every retry early again the model never came back.
            while (left := crashes.wait_left(time.monotonic())) > 0:
                await asyncio.sleep(left)
            try:
                await self.get_any(model)
                return
            except Exception as exc:
                crashes.record(f"failed to start again: {exc}", time.monotonic())
                delay = crashes.backoff or FIRST_BACKOFF_S
                log.error("restarting %s failed (%s); next try in %.0f s", model, exc, delay)

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
            client = self._clients.get(spec.id)
            if (client is None or spec.keep_alive is None or spec.id == self.default_id
                    or now - self._last_used.get(spec.id, now) < spec.keep_alive or not client.idle):
                continue
            await self._unload(spec.id, "idle")
            done.append(spec.id)
        return done

    async def _fit_budget(self, keep: str) -> None:
        """Unload idle models, least recently used first, while the loaded ones exceed the budget."""
        if self._budget is None:
            return
        for model_id in sorted(self._clients, key=lambda m: self._last_used.get(m, 0.0)):
            if sum(c.info.memory_bytes for c in self._clients.values()) <= self._budget:
                return
            if model_id not in (keep, self.default_id) and self._clients[model_id].idle:
                await self._unload(model_id, "memory budget")

    async def _unload(self, model_id: str, why: str) -> None:
        client = self._clients.pop(model_id)
        log.info("unloading %s (%s)", model_id, why)
        await client.close()

    async def close(self) -> None:
        for task in list(self._restarts):
            task.cancel()
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients))
