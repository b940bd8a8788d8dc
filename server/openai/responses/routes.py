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
from ...sse import JSONBody
from . import convert
from .output import OutputItems
from .protocol import InputTokensRequest, ResponsesRequest
from .render import Echo, ResponseRenderer
from .store import ResponseStore, Stored

router = APIRouter(route_class=CheckedRoute)

NAMES = ("input", "max_output_tokens")  # check_size's names for this protocol
MAX_DEPTH = 128  # JSON nesting levels of a body: what is stored is echoed back, and must serialize


async def check_input_size(request: Request, body: InputTokensRequest) -> None:
    """Before items are read (and item_references looked up): the server's limit on messages
    holds for input items of every kind, and the body's nesting is bounded."""
    check_size(request, len(body.input) if isinstance(body.input, list) else 1, None, NAMES)
    path = too_deep(await request.json(), MAX_DEPTH)  # parsed once already (jsonbody), kept by Starlette
    if path is not None:
        raise ApiError(400, f"{path}: nested more than {MAX_DEPTH} levels deep", param=path)


def too_deep(value: object, limit: int) -> str | None:
    """The path of the first value nested deeper than `limit`, else None (no recursion)."""
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            return path
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
    return None


def store_of(request: Request) -> ResponseStore:
    return request.app.state.responses


@router.post("/v1/responses")
async def create(body: ResponsesRequest, request: Request) -> Response:
    store = store_of(request)
    await check_input_size(request, body)
    turn = convert.read(body, store)
    check_size(request, len(turn.messages), body.max_output_tokens, NAMES)
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
    """Submit; with truncation "auto", a conversation that does not fit loses its oldest turns,
    as few as will do (found by counting, O(log turns) tokenizations); with "disabled", the
    overflow is the caller's context_length_exceeded."""
    try:
        return await engine.submit(req), req
    except ContextLengthExceeded as exc:
        starts = convert.turn_starts(req.messages) if truncate else []
        if not starts:
            raise

        async def fits(k: int) -> bool:
            shorter = dataclasses.replace(req, messages=convert.drop_turns(req.messages, starts, k))
            return await engine.count_tokens(shorter) < exc.n_ctx

        low, high = 1, len(starts)
        if not await fits(high):
            raise  # the last user turn itself does not fit
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if await fits(middle) else (middle + 1, high)
        req = dataclasses.replace(req, messages=convert.drop_turns(req.messages, starts, low))
        return await engine.submit(req), req


@router.post("/v1/responses/input_tokens")
async def input_tokens(body: InputTokensRequest, request: Request) -> dict:
    await check_input_size(request, body)
    turn = convert.read(body, store_of(request))
    check_size(request, len(turn.messages), None, NAMES)
    async with engine_for(request, body.model) as engine:
        count = await engine.count_tokens(convert.to_request(body, turn, engine.spec.sampling))
    return {"object": "response.input_tokens", "input_tokens": count}


def stored(request: Request, response_id: str) -> Stored:
    entry = store_of(request).get(response_id)
    if entry is None:
        raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
    return entry


@router.get("/v1/responses/{response_id}")
async def retrieve(response_id: str, request: Request) -> JSONResponse:
    return JSONBody(stored(request, response_id).response)


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
    return JSONBody({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})
