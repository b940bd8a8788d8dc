"""Thin handlers for /v1/chat/completions and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from engine import Registry

from .. import sse
from ..errors import ApiError
from . import convert
from .protocol import ChatCompletionRequest

router = APIRouter()


def _registry(request: Request) -> Registry:
    return request.app.state.registry


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    engine = await _registry(request).get(body.model)
    gen = await engine.submit(convert.to_request(body, engine.spec.sampling))
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.response(gen, convert.ChunkRenderer(engine.spec.id, include_usage))
    result = await sse.collect(gen, request)
    if result is None:
        return Response(status_code=499)  # nobody is listening any more
    text, final = result
    if final.finish_reason not in convert.FINISH_REASONS:
        raise ApiError(500, "generation failed")
    return JSONResponse(convert.completion_body(engine.spec.id, text, final))


def model_card(request: Request, model_id: str) -> dict:
    registry = _registry(request)
    spec = registry.spec(model_id)
    return {
        "id": spec.id,
        "object": "model",
        "created": request.app.state.started,
        "owned_by": "ggserve",
        "context_length": spec.n_ctx,
        "aliases": list(spec.aliases),
        "loaded": registry.loaded(spec.id) is not None,
    }


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    return {"object": "list", "data": [model_card(request, s.id) for s in _registry(request).specs]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict:
    return model_card(request, model_id)
