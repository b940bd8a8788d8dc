"""Thin handlers for /v1/chat/completions and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..handlers import check_size, engine_for, registry_of, respond
from ..jsonbody import CheckedRoute
from . import completions, convert
from .completions import CompletionRequest
from .protocol import ChatCompletionRequest

router = APIRouter(route_class=CheckedRoute)


@router.post("/v1/chat/completions")
@router.post("/api/v1/chat/completions")  # some agent platforms call this path (with ?agent=true)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    check_size(request, len(body.messages), body.max_completion_tokens or body.max_tokens)
    async with engine_for(request, body.model) as engine:
        gen = await engine.submit(convert.to_request(body, engine.spec.sampling))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(request, gen, body.stream,
                         lambda: convert.ChunkRenderer(engine.spec.id, include_usage, body.n),
                         lambda deltas: convert.completion_body(engine.spec.id, deltas, bool(body.logprobs)))


@router.post("/v1/completions")
async def legacy_completions(body: CompletionRequest, request: Request) -> Response:
    check_size(request, 1, body.max_tokens)
    async with engine_for(request, body.model) as engine:
        prompts = completions.prompts_of(body)
        completions.check_prompt_count(prompts, engine.room)
        requests = [completions.to_request(body, p, engine.spec.sampling) for p in prompts]
        gens = []
        try:
            for req in requests:
                gens.append(await engine.submit(req))
        except BaseException:
            for gen in gens:  # nothing half-done: earlier prompts of a refused request are aborted
                gen.close()
            raise
    group = completions.Gathered(gens, body.n)
    return await respond(
        request, group, body.stream,
        lambda: completions.CompletionRenderer(engine.spec.id, body, prompts, group.n_choices),
        lambda deltas: completions.completion_body(engine.spec.id, deltas, body, prompts))


def model_card(request: Request, model_id: str) -> dict:
    registry = registry_of(request)
    spec = registry.spec(model_id)
    engine = registry.loaded(spec.id)
    crashes = registry.crashes.get(spec.id)
    card = {
        "id": spec.id,
        "object": "model",
        "created": request.app.state.started,
        "owned_by": "ggserve",
        "context_length": spec.n_ctx,
        "aliases": list(spec.aliases),
        "loaded": engine is not None,
        "restarts": crashes.count if crashes else 0,
    }
    if crashes:
        card["last_crash"] = crashes.last_reason
    if engine is not None and engine.info.template:
        card["chat_template"] = engine.info.template
    return card


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    return {"object": "list", "data": [model_card(request, s.id) for s in registry_of(request).specs]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict:
    return model_card(request, model_id)
