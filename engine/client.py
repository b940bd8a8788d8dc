"""The server's side of a model's worker process: the same face an in-process engine had
(submit, abort, count_tokens, embed, stats, close), over a multiprocessing connection; `tokenizer`
asks the worker about tokens and the chat template."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Callable

from .config import ModelSpec
from .errors import EngineCrashed, InvalidRequest, Overloaded
from .generation import Generation
from .launch import Launched, Launcher, ProcessLauncher
from .link import Link
from .messages import (Abort, Accepted, CountTokens, Embed, LoadFailed, ModelInfo, Ready, Refused, Result,
                       Shutdown, Start, Step, Submit)
from .pending import Pending
from .tokenizer import Tokenizer
from .types import EngineStats, Failure, GenerateRequest

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


class EngineClient:
    def __init__(self, spec: ModelSpec, launcher: Launcher | None = None, *, log_level: str = "INFO",
                 backend: str | None = None, max_queue: int = 64,
                 on_exit: Callable[[EngineClient, str], None] | None = None):
        self.spec = spec
        self.max_queue = max_queue  # requests waiting for a slot; beyond it submit() refuses at once
        self.info = ModelInfo(pid=0, n_seq=spec.parallel)
        self.leases = 0  # handlers holding this engine between lookup and submit (see Registry.use)
        self._start = Start(spec, log_level, backend)
        self._launcher = launcher or ProcessLauncher()
        self._on_exit = on_exit
        self._ids = itertools.count(1)
        self._pending = Pending()
        self._stats = EngineStats(free_slots=spec.parallel)
        self._link: Link | None = None
        self._proc: Launched | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._lost: str | None = None
        self.tokenizer = Tokenizer(self._ask)

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and wait until its model is loaded; raises the load's error."""
        self._loop = asyncio.get_running_loop()
        conn, self._proc = await asyncio.to_thread(self._launcher.launch)
        conn.send(self._start)
        try:
            first = await asyncio.to_thread(conn.recv)
        except (EOFError, OSError):
            reason = await asyncio.to_thread(self._proc.exit_reason, CLOSE_TIMEOUT_S)
            raise EngineCrashed(self.spec.id, f"worker {reason} while loading") from None
        if isinstance(first, LoadFailed):
            await asyncio.to_thread(self._proc.wait, CLOSE_TIMEOUT_S)
            raise first.error
        assert isinstance(first, Ready), first
        self.info = first.info
        self._stats = EngineStats(free_slots=self.info.n_seq)
        self._link = Link(conn, self._loop, self._dispatch, self._closed)
        self._link.start(self.spec.id)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._lost is None and not self._closing

    @property
    def pid(self) -> int:
        return self.info.pid

    @property
    def in_flight(self) -> int:
        """Requests sent and not finished (preparing, queued or running)."""
        return len(self._pending)

    @property
    def room(self) -> int:
        """Requests this model holds at once, queued or running: beyond them submit() refuses."""
        return self.max_queue + self.info.n_seq

    @property
    def idle(self) -> bool:
        return self.leases == 0 and self.in_flight == 0

    async def close(self) -> None:
        """End the worker (its memory, GPU memory too, goes back); waits for it to exit."""
        if self._proc is None or self._closing:
            return
        self._closing = True
        if self._link is not None:
            self._link.send(Shutdown(), last=True)
        if not await asyncio.to_thread(self._proc.wait, CLOSE_TIMEOUT_S):
            log.warning("%s: worker did not exit within %.0f s; killing it", self.spec.id, CLOSE_TIMEOUT_S)
            self._proc.kill()
        self._pending.fail_all(Overloaded(self.spec.id, why="is being unloaded"),
                               Failure("model_unloaded", f"model {self.spec.id!r} was unloaded"))

    # --- requests ----------------------------------------------------------------------------

    async def submit(self, request: GenerateRequest) -> Generation:
        """Validate and enqueue; the returned Generation yields Deltas as the worker makes them.
        Checks and preparation errors surface here, before any byte is streamed."""
        self._check_open()
        if self.in_flight >= self.room:
            raise Overloaded(self.spec.id, retry_after=1.0)  # refused now, not queued without end
        rid = next(self._ids)
        gen = Generation(request.n, lambda: self._send(Abort(rid)))
        self._pending.streams[rid] = gen
        try:
            gen.prompt_tokens = await self._call(rid, Submit(rid, request))
        except BaseException:
            self._pending.streams.pop(rid, None)
            raise
        return gen

    async def count_tokens(self, request: GenerateRequest) -> int:
        """The prompt's token count, exactly as submit() would count it."""
        return await self._ask(lambda rid: CountTokens(rid, request))

    async def _ask(self, make: Callable[[int], Any]) -> Any:
        """Send the question `make(rid)` and wait for the worker's Result."""
        self._check_open()
        rid = next(self._ids)
        return await self._call(rid, make(rid))

    async def embed(self, inputs: list[str | list[int]]) -> tuple[list[list[float]], int]:
        """Unit vectors for each input, and the number of tokens read."""
        self._check_open()
        if self.in_flight >= self.room:
            raise Overloaded(self.spec.id, retry_after=1.0)
        rid = next(self._ids)
        return await self._call(rid, Embed(rid, list(inputs)))

    def stats(self) -> EngineStats:
        """The counters the worker published after its last step."""
        return self._stats

    def _check_open(self) -> None:
        if self._lost is not None:
            raise EngineCrashed(self.spec.id, self._lost)
        if self._closing or self._proc is None:
            raise Overloaded(self.spec.id, why="is being unloaded")

    async def _call(self, rid: int, msg: Any) -> Any:
        future = self._loop.create_future()
        self._pending.calls[rid] = future
        try:
            self._send(msg)
            return await future
        except asyncio.CancelledError:  # the caller went away while it was being prepared
            self._send(Abort(rid))
            raise
        finally:
            self._pending.calls.pop(rid, None)

    def _send(self, msg: Any) -> None:
        """A request that cannot cross the boundary (nested past the pickler's recursion limit,
        say) fails alone, in its caller."""
        if not self.alive or self._link is None:
            return
        try:
            self._link.send(msg)
        except RecursionError:
            raise InvalidRequest("the request is nested too deeply", param=_deepest_schema(msg)) from None

    # --- what the connection's reader hands to the event loop --------------------------------

    def _closed(self) -> None:
        """On the reader thread: the worker's end of the connection is gone."""
        reason = self._proc.exit_reason(CLOSE_TIMEOUT_S)
        if not self._proc.wait(0):  # alive without a connection: of no use, and holding a model
            self._proc.kill()
        if not self._closing:
            try:
                self._loop.call_soon_threadsafe(self._died, reason)
            except RuntimeError:
                pass  # the event loop is closed: the server is going down

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, Step):
            self._stats = msg.stats or self._stats
            self._pending.deliver(msg.deltas)
        elif isinstance(msg, Accepted):
            self._pending.resolve(msg.rid, msg.prompt_tokens)
        elif isinstance(msg, Result):
            self._pending.resolve(msg.rid, msg.value)
        elif isinstance(msg, Refused):
            self._pending.reject(msg.rid, msg.error)

    def _died(self, reason: str) -> None:
        self._lost = reason
        log.error("model %s: worker (pid %d) %s; failing %d request(s)", self.spec.id, self.pid, reason,
                  self.in_flight)
        self._pending.fail_all(EngineCrashed(self.spec.id, reason),
                               Failure("model_crashed", f"model {self.spec.id!r} crashed ({reason}) and is being restarted"))
        if self._on_exit is not None:
            self._on_exit(self, reason)


def nesting_error(request: Any) -> InvalidRequest:
    """The 400 for a request too deeply nested to cross a process boundary, naming its deepest
    schema (also used where Ray carries requests: server/ray)."""
    return InvalidRequest("the request is nested too deeply", param=_deepest_schema(_Carrier(request)))


class _Carrier:
    __slots__ = ("request",)

    def __init__(self, request: Any):
        self.request = request


def _deepest_schema(msg: Any) -> str | None:
    """Where a request too deep to pickle is deep: its schemas are its only free-form JSON."""
    request = getattr(msg, "request", None)
    if request is None:
        return None
    places = [(request.response_format.schema, request.response_format.param)]
    places += [(tool.parameters, tool.param) for tool in request.tools]
    depth, param = max(((_depth(value), param) for value, param in places), key=lambda p: p[0])
    return param if depth else None


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
                deepest = max(deepest, depth + 1)
    return deepest
