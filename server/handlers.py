"""What both protocols' route handlers share: the registry, and answering with a generation."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import Response

from engine import Delta, EngineClient, FinishReason, Generation, Registry

from . import sse
from .access import CURRENT, first_token_seconds, note
from .errors import ApiError, from_failure


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def check_size(request: Request, n_messages: int, max_tokens: int | None,
               names: tuple[str, str] = ("messages", "max_tokens")) -> None:
    """The server's request-size limits, in each protocol's 400; `names`: the protocol's names
    for the messages and the output cap."""
    settings = request.app.state.settings
    if n_messages > settings.max_messages:
        raise ApiError(400, f"At most {settings.max_messages} {names[0]} per request; got {n_messages}.",
                       param=names[0])
    ceiling = settings.max_tokens_ceiling
    if ceiling and max_tokens is not None and max_tokens > ceiling:
        raise ApiError(400, f"{names[1]} may be at most {ceiling} on this server; got {max_tokens}.",
                       param=names[1])


@contextlib.asynccontextmanager
async def engine_for(request: Request, name: str, embedding: bool = False) -> AsyncIterator[EngineClient]:
    """The engine serving `name` (loaded if need be), noted for the access log and kept loaded
    while the handler uses it; a submitted generation then keeps it until it finishes."""
    async with registry_of(request).use(name, embedding) as engine:
        note(model=engine.spec.id)
        yield engine


async def respond(request: Request, gen: Generation, stream: bool,
                  renderer: Callable[[], sse.StreamRenderer],
                  body: Callable[[list[Delta]], dict]) -> Response:
    """Stream the generation as SSE, or collect it and answer with `body(deltas)` (the final
    Delta last). A generation that failed is the error of its failure, in the protocol's shape."""
    if stream:
        model = CURRENT.get().model if CURRENT.get() else "-"

        def first_token() -> None:
            seconds = first_token_seconds()
            if seconds is not None:
                request.app.state.metrics.ttft.labels(model).observe(seconds)
                note(ttft_ms=seconds * 1000)  # and on the access-log line

        return sse.response(gen, renderer(), first_token)
    try:
        result = await sse.collect(gen, request)
    finally:
        await sse.account(gen)
    if result is None:
        return Response(status_code=499)  # the client went away; nobody reads this
    failed = next((d for d in result if d.finish_reason is FinishReason.ERROR), None)
    if failed is not None:
        raise from_failure(failed.failure)
    return sse.JSONBody(body(result))
