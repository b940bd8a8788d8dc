"""One request's reply stream from the replicas, as the ingress follows it.

Until the first delta has come back the request may move: a replica that dies, or one shutting
down (a downscale, a redeploy) that hands back requests it had not started, gets it sent to
another replica. Once a delta has been streamed, its replica's death ends the reply with a clear
`model_crashed` error, as a worker crash does in a plain ggserve."""

from __future__ import annotations

import asyncio
import logging
import pickle
from typing import Any

from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, RequestCancelledError

from engine import EngineCrashed, Failure, GenerateRequest, Generation, Overloaded, nesting_error

log = logging.getLogger(__name__)

ATTEMPTS = 3  # replicas a request is offered to before it fails
REPLICA_GONE = (RayActorError, ActorUnavailableError)


class ReplicaGone(Exception):
    """The replica gave the request back unstarted (it is shutting down)."""


class ReplyStream:
    def __init__(self, engine: Any, request: GenerateRequest, keys: list[str]):
        self.engine = engine
        self.request = request
        self.keys = keys
        self.stream: Any = None
        self.closed = False  # the caller gave up: any stream opened from now on is cancelled at once

    def cancel(self) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.cancel()

    async def open(self) -> tuple:
        """Send the request until a replica admits it: (replica, prompt_tokens, n)."""
        model = self.engine.spec.id
        for _ in range(ATTEMPTS):
            self.stream = self.engine.handle.options(stream=True).generate.remote(model, self.request, prefix=self.keys)
            try:
                kind, value = await self.stream.__anext__()
            except REPLICA_GONE as exc:
                self.stream.cancel()  # an unavailable replica may still hold it: never twice
                log.warning("%s: a replica failed before admitting a request (%s); trying another", model, exc)
                continue
            except BackPressureError:
                raise Overloaded(model) from None
            except (pickle.PicklingError, RecursionError):
                raise nesting_error(self.request) from None
            except BaseException:  # cancelled while waiting: the replica must not go on alone
                self.stream.cancel()
                raise
            if kind == "refused":
                raise value
            if self.closed:
                self.stream.cancel()
            return value
        raise EngineCrashed(model, f"{ATTEMPTS} replicas failed before admitting the request")

    async def pump(self, gen: Generation) -> None:
        """Feed the generation from the replica's stream, moving the request while it is unstarted."""
        started = False
        while True:
            try:
                async for kind, value in self.stream:
                    if kind == "gone" and not started:
                        raise ReplicaGone(value)
                    if kind == "deltas":
                        started = True
                        gen.push(value)
                    elif kind == "stats":
                        self.engine.note_stats(*value)
                if not gen.finished:
                    gen.fail(Failure("model_crashed", "the replica's stream ended before the reply did"))
                return
            except (RequestCancelledError, asyncio.CancelledError):
                # The caller closed the generation: the replica aborts the sequence; its final
                # usage will not come back, so settle() need not wait for it.
                gen.fail(Failure("aborted", "the request was cancelled"))
                return
            except (*REPLICA_GONE, ReplicaGone) as exc:
                if started or self.closed:
                    gen.fail(Failure("model_crashed", f"the replica serving this request died: {exc}"))
                    return
                log.warning("%s: a replica failed with a request not yet started; resending it", self.engine.spec.id)
                self.stream.cancel()
                try:
                    await self.open()
                except Exception as again:
                    gen.fail(Failure("model_crashed", str(again)))
                    return
            except Exception as exc:  # anything else from Ray: this request ends, clearly
                log.exception("%s: the replica stream failed", self.engine.spec.id)
                gen.fail(Failure("model_crashed", f"the replica stream failed: {type(exc).__name__}: {exc}"))
                return
