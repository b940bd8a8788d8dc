"""Utility endpoints over a model's tokenizer and chat template, with OpenAI-shaped errors:
/tokenize, /detokenize, /apply-template (request shapes as llama-server's) and
/v1/chat/completions/input_tokens (a chat body's prompt tokens, as Anthropic's count_tokens)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictInt

from engine import MAX_LISTED_TOKENS, EngineClient, GenerateRequest, Tokens

from ..errors import ApiError
from ..handlers import check_size, engine_for
from ..jsonbody import CheckedRoute
from ..sse import JSONBody
from . import convert
from .protocol import ChatCompletionRequest, ChatMessage

router = APIRouter(route_class=CheckedRoute)


class TokenizeRequest(ChatCompletionRequest):
    """`content` (text) or `messages` (a chat body: tools, tool_choice and reasoning_effort shape the
    prompt as they do for /v1/chat/completions)."""

    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    content: str | None = None
    add_special: bool = False  # content only: the BOS the engine adds to prompts
    with_pieces: bool = False


class DetokenizeRequest(BaseModel):
    model: str
    tokens: list[StrictInt] = Field(max_length=MAX_LISTED_TOKENS)


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, request: Request) -> Response:
    if (body.content is None) == (body.messages is None):
        raise ApiError(400, "Give exactly one of 'content' (a text) and 'messages' (a chat, rendered with the "
                            "model's template).", param="content")
    check_size(request, len(body.messages or ()), None)
    async with engine_for(request, body.model) as engine:
        if body.content is not None:
            found = await engine.tokenizer.tokenize(body.content, body.add_special, body.with_pieces)
        else:
            found = await engine.tokenizer.tokenize(convert.to_request(body, engine.spec.sampling),
                                                    pieces=body.with_pieces)
    return JSONBody({"model": engine.spec.id, "tokens": listed(found)})


def listed(found: Tokens) -> list:
    """Ids, or {id, piece} pairs as llama-server gives them: a piece is its text when its bytes are
    UTF-8, else the list of its byte values (a token may end mid-character)."""
    if found.pieces is None:
        return found.ids
    return [{"id": token, "piece": _piece(piece)} for token, piece in zip(found.ids, found.pieces)]


def _piece(raw: bytes) -> str | list[int]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return list(raw)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request) -> Response:
    async with engine_for(request, body.model) as engine:
        text = await engine.tokenizer.detokenize(body.tokens)
    return JSONBody({"model": engine.spec.id, "content": text})


@router.post("/apply-template")
async def apply_template(body: ChatCompletionRequest, request: Request) -> Response:
    model, prompt = await about_chat(body, request, lambda engine, req: engine.tokenizer.render(req))
    return JSONBody({"model": model, "prompt": prompt})


@router.post("/v1/chat/completions/input_tokens")
async def input_tokens(body: ChatCompletionRequest, request: Request) -> Response:
    model, count = await about_chat(body, request, lambda engine, req: engine.count_tokens(req))
    return JSONBody({"object": "chat.completion.input_tokens", "model": model, "input_tokens": count})


async def about_chat(body: ChatCompletionRequest, request: Request,
                     ask: Callable[[EngineClient, GenerateRequest], Awaitable[Any]]) -> tuple[str, Any]:
    """The model's id and its answer about the prompt of a chat completions body."""
    check_size(request, len(body.messages), None)
    async with engine_for(request, body.model) as engine:
        return engine.spec.id, await ask(engine, convert.to_request(body, engine.spec.sampling))
