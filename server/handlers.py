"""What both protocols' route handlers share: the registry, and answering with a generation."""

from __future__ import annotations

from typing import Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from engine import Delta, Engine, Generation, Registry

from . import sse
from .access import CURRENT, first_token_seconds, note
from .errors import ApiError


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def check_size(request: Request, n_messages: int, max_tokens: int | None) -> None:
    """The server's request-size limits, in each protocol's 400."""
    settings = request.app.state.settings
    if n_messages > settings.max_messages:
        raise ApiError(400, f"At most {settings.max_messages} messages per request; got {n_messages}.",
                       param="messages")
    ceiling = settings.max_tokens_ceiling
    if ceiling and max_tokens is not None and max_tokens > ceiling:
        raise ApiError(400, f"max_tokens may be at most {ceiling} on this server; got {max_tokens}.",
                       param="max_tokens")


async def engine_for(request: Request, name: str) -> Engine:
    """The generating engine serving `name` (loaded if need be), noted for the access log."""
    engine = await registry_of(request).get(name)
    note(model=engine.spec.id)
    return engine


async def respond(request: Request, gen: Generation, stream: bool,
                  renderer: Callable[[], sse.StreamRenderer],
                  body: Callable[[list[Delta]], dict | None]) -> Response:
    """Stream the generation as SSE, or collect it and answer with `body(deltas)` (the final
    Delta last); `body` returns None for a generation that failed."""
    if stream:
        model = CURRENT.get().model if CURRENT.get() else "-"

        def first_token() -> None:
            seconds = first_token_seconds()
            if seconds is not None:
                request.app.state.metrics.ttft.labels(model).observe(seconds)

        return sse.response(gen, renderer(), first_token)
    result = await sse.collect(gen, request)
    if result is None:
        return Response(status_code=499)  # the client went away; nobody reads this
    sse.note_usage(result, gen.n)
    answer = body(result)
    if answer is None:
        raise ApiError(500, "generation failed")
    return JSONResponse(answer)
