"""Thin handlers for /v1/responses: create (stream or not), retrieve, delete, input_items, and
input_tokens."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from engine import ContextLengthExceeded, EngineClient, Generation, GenerateRequest

from ...errors import ApiError
from ...handlers import check_size, engine_for, respond
from ...jsonbody import CheckedRoute
from . import convert
from .output import OutputItems
from .protocol import InputTokensRequest, ResponsesRequest
from .render import Echo, ResponseRenderer
from .store import ResponseStore, Stored

router = APIRouter(route_class=CheckedRoute)


def store_of(request: Request) -> ResponseStore:
    return request.app.state.responses


@router.post("/v1/responses")
async def create(body: ResponsesRequest, request: Request) -> Response:
    store = store_of(request)
    turn = convert.read(body, store)
    check_size(request, len(turn.messages), body.max_output_tokens)
    async with engine_for(request, body.model) as engine:
        req = convert.to_request(body, turn, engine.spec.sampling)
        gen, req = await submit_fitting(engine, req, body.truncation == "auto")
    echo = Echo(engine.spec.id, convert.echo_fields(body))

    def keep(response: dict) -> None:
        if body.store:
            history = [m for m in req.messages if not (body.instructions and m is req.messages[0])]
            store.put(Stored(response, turn.conversation.items, history + convert.assistant_turn(response["output"])))

    summary = bool(body.reasoning and (body.reasoning.summary or body.reasoning.generate_summary))
    items = OutputItems(turn.tools, summary=summary, logprobs=req.logprobs is not None)
    renderer = ResponseRenderer(echo, items, keep)
    return await respond(request, gen, body.stream, lambda: renderer, renderer.final)


async def submit_fitting(engine: EngineClient, req: GenerateRequest, truncate: bool) -> tuple[Generation, GenerateRequest]:
    """Submit; with truncation "auto", a conversation that does not fit loses its oldest turns
    until it does (with "disabled", the overflow is the caller's context_length_exceeded)."""
    while True:
        try:
            return await engine.submit(req), req
        except ContextLengthExceeded:
            shorter = convert.fit_by_truncation(req.messages) if truncate else None
            if shorter is None:
                raise
            req = dataclasses.replace(req, messages=shorter)


@router.post("/v1/responses/input_tokens")
async def input_tokens(body: InputTokensRequest, request: Request) -> dict:
    turn = convert.read(body, store_of(request))
    async with engine_for(request, body.model) as engine:
        count = await engine.count_tokens(convert.to_request(body, turn, engine.spec.sampling))
    return {"object": "response.input_tokens", "input_tokens": count}


def stored(request: Request, response_id: str) -> Stored:
    entry = store_of(request).get(response_id)
    if entry is None:
        raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
    return entry


@router.get("/v1/responses/{response_id}")
async def retrieve(response_id: str, request: Request) -> dict:
    return stored(request, response_id).response


@router.delete("/v1/responses/{response_id}")
async def delete(response_id: str, request: Request) -> dict:
    if not store_of(request).delete(response_id):
        raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/v1/responses/{response_id}/input_items")
async def input_items(response_id: str, request: Request, after: str | None = None,
                      limit: int = Query(default=20, ge=1, le=100), order: str = "desc") -> JSONResponse:
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be 'asc' or 'desc'", param="order")
    items = stored(request, response_id).input_items
    items = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise ApiError(400, f"No item with id '{after}' in this response's input.", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})
