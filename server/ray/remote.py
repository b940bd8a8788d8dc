"""The ingress's side of the replicas: a Registry whose engines live in the Ray Serve deployment,
so server/'s routes and protocol translators run unchanged on top of it.

A request is retried on another replica while nothing of its reply has come back (the replica
died before admitting it, or with it still queued); once a delta has been streamed, a replica's
death ends it with a clear `model_crashed` error, as a worker crash does in a plain ggserve."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle
from typing import Any

from engine import (EngineCrashed, EngineStats, GenerateRequest, Generation, ModelInfo, ModelsConfig, Registry,
                    nesting_error)

from ..access import note
from .router import prefix_keys
from .stream import ATTEMPTS, REPLICA_GONE, ReplyStream

log = logging.getLogger(__name__)

STATS_TIMEOUT_S = 2.0
STATS_EVERY_S = 1.0


class RemoteTokenizer:
    """engine.Tokenizer's calls, answered by a replica."""

    def __init__(self, engine: RemoteEngine):
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            return await self._engine.call("tokenizer." + name, *args)
        return call


class RemoteEngine:
    """EngineClient's face (spec, info, submit, count_tokens, embed, tokenizer, stats) over the
    deployment handle; stats are the sum of what each replica last reported."""

    def __init__(self, spec: Any, handle: Any):
        self.spec = spec
        self.info = ModelInfo(pid=0, n_seq=spec.parallel)
        self.leases = 0
        self.pid = 0
        self.alive = True
        # What the cluster holds at once depends on its replicas and Ray's own queue, which Ray
        # admits against: not known here, so a request is never refused for its size by it.
        self.room: int | None = None
        self.tokenizer = RemoteTokenizer(self)
        self.handle = handle
        self._stats: dict[str, EngineStats] = {}
        self._pumps: set[asyncio.Task] = set()

    async def call(self, method: str, *args: Any, replica: str | None = None) -> Any:
        """A replica's answer to one engine call (`replica`: that one, else the router's pick)."""
        for attempt in range(ATTEMPTS):
            try:
                kind, value = await self.handle.call.remote(self.spec.id, method, *args,
                                                             embedding=self.spec.embedding, replica=replica)
            except REPLICA_GONE as exc:
                log.warning("%s: a replica died during %s (%s); trying another", self.spec.id, method, exc)
                continue
            except (pickle.PicklingError, RecursionError):
                raise nesting_error(next((a for a in args if isinstance(a, GenerateRequest)), None)) from None
            if kind == "refused":
                raise value
            return value
        raise EngineCrashed(self.spec.id, f"{ATTEMPTS} replicas died during {method}")

    async def load_info(self) -> None:
        _, self.info = await self.call("info")

    async def count_tokens(self, request: GenerateRequest) -> int:
        return await self.call("count_tokens", request)

    async def embed(self, inputs: list) -> Any:
        return await self.call("embed", inputs)

    async def refresh_stats(self) -> None:
        """Ask each replica known to have served this model for its counters; forget the dead."""
        for name in list(self._stats):
            try:
                kind, value = await asyncio.wait_for(self.handle.call.remote(
                    self.spec.id, "stats", embedding=self.spec.embedding, replica=name), STATS_TIMEOUT_S)
            except REPLICA_GONE:
                self._stats.pop(name, None)
                continue
            except TimeoutError:  # busy to its max_ongoing_requests: keep what it said last
                continue
            if kind == "ok" and value[0] == name:
                self._stats[name] = value[1]
            elif kind == "ok":  # that replica is gone; another answered
                self._stats.pop(name, None)

    def stats(self) -> EngineStats:
        total = EngineStats(free_slots=0)
        for snapshot in list(self._stats.values()):
            for f in dataclasses.fields(EngineStats):
                value = getattr(snapshot, f.name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    merge = max if f.name.startswith("max_") else (lambda a, b: a + b)
                    setattr(total, f.name, merge(getattr(total, f.name), value))
        return total

    async def submit(self, request: GenerateRequest) -> Generation:
        try:
            keys = prefix_keys(request)
        except RecursionError:
            raise nesting_error(request) from None
        reply = ReplyStream(self, request, keys)
        replica, prompt_tokens, n = await reply.open()
        self._stats.setdefault(replica, EngineStats(free_slots=0))
        gen = Generation(n, reply.cancel, prompt_tokens)
        note(replica=replica)
        task = asyncio.create_task(reply.pump(gen))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)
        return gen

    def note_stats(self, replica: str, stats: EngineStats) -> None:
        self._stats[replica] = stats

    def cancel_all(self) -> None:
        for task in list(self._pumps):
            task.cancel()


class RayRegistry(Registry):
    """Registry's lookups and leases (Registry.use) with engines that are the deployment's."""

    def __init__(self, config: ModelsConfig, handle: Any):
        super().__init__(config)
        self._handle = handle
        self._remote: dict[str, RemoteEngine] = {}
        self._poller: asyncio.Task | None = None

    async def preload(self) -> None:
        await super().preload()
        self._poller = asyncio.create_task(self._poll_stats())

    async def _poll_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            for engine in list(self._remote.values()):
                try:
                    await engine.refresh_stats()
                except Exception:  # the counters are a view; keep polling
                    log.exception("polling the replicas' stats failed")

    def loaded(self, model_id: str) -> Any:
        return self._remote.get(model_id)

    async def get_any(self, name: str) -> Any:
        spec = self.spec(name)
        engine = self._remote.get(spec.id)
        if engine is None:
            engine = RemoteEngine(spec, self._handle)
            await engine.load_info()  # a replica loads the model if it has not yet
            engine = self._remote.setdefault(spec.id, engine)
        return engine

    async def unload_idle(self) -> list[str]:
        return []  # each replica unloads its own idle models

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for engine in self._remote.values():
            engine.cancel_all()
