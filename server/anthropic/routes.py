"""Thin handlers for /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from engine import Registry

from .. import sse
from ..errors import ApiError
from . import convert
from .protocol import CountTokensRequest, MessagesRequest

router = APIRouter()


def _registry(request: Request) -> Registry:
    return request.app.state.registry


@router.post("/v1/messages")
async def messages(body: MessagesRequest, request: Request) -> Response:
    engine = await _registry(request).get(body.model)
    gen = await engine.submit(convert.to_request(body, engine.spec.sampling))
    if body.stream:
        return sse.response(gen, convert.EventRenderer(engine.spec.id, gen.prompt_tokens))
    result = await sse.collect(gen, request)
    if result is None:
        return Response(status_code=499)  # nobody is listening any more
    text, final = result
    if convert.stop_reason(final) is None:
        raise ApiError(500, "generation failed")
    return JSONResponse(convert.message_body(engine.spec.id, text, final))


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request) -> dict:
    engine = await _registry(request).get(body.model)
    return {"input_tokens": await engine.count_tokens(convert.to_request(body, engine.spec.sampling))}
