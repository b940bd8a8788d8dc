"""Thin handlers for /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..handlers import check_size, engine_for, respond
from ..jsonbody import CheckedRoute
from . import convert, render
from .protocol import CountTokensRequest, MessagesRequest

router = APIRouter(route_class=CheckedRoute)


@router.post("/v1/messages")
async def messages(body: MessagesRequest, request: Request) -> Response:
    check_size(request, len(body.messages), body.max_tokens)
    async with engine_for(request, body.model) as engine:
        gen = await engine.submit(convert.to_request(body, engine.spec.sampling))
    omit = bool(body.thinking and body.thinking.display == "omitted")
    return await respond(request, gen, body.stream,
                         lambda: render.EventRenderer(engine.spec.id, gen.prompt_tokens, omit),
                         lambda deltas: render.message_body(engine.spec.id, deltas, omit))


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request) -> dict:
    check_size(request, len(body.messages), None)
    async with engine_for(request, body.model) as engine:
        return {"input_tokens": await engine.count_tokens(convert.to_request(body, engine.spec.sampling))}
