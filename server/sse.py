"""Server-sent events: framing, keep-alive comments, and aborting the engine on disconnect."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from engine import Delta, FinishReason, Generation, usage_of

from .access import note
from .errors import ApiError, from_failure
from .jsonbody import SURROGATE

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 5.0  # clients drop a silent stream (Codex after 300 s); some proxies far sooner
DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def utf8(text: str) -> bytes:
    """Model output may decode to a lone surrogate (a JSON escape the grammar allowed): it goes
    out as U+FFFD instead of failing the whole response."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return SURROGATE.sub("\ufffd", text).encode()


def data(obj: object) -> bytes:
    return utf8(f"data: {dumps(obj)}\n\n")


def event(name: str, obj: object) -> bytes:
    return utf8(f"event: {name}\ndata: {dumps(obj)}\n\n")


class JSONBody(JSONResponse):
    """A JSON response that survives model output holding a lone surrogate (see utf8)."""

    def render(self, content: object) -> bytes:
        return utf8(dumps(content))


class StreamRenderer(Protocol):
    """Turns engine Deltas into one protocol's SSE frames."""

    def start(self) -> list[bytes]: ...
    def on_delta(self, delta: Delta) -> list[bytes]: ...
    def on_finish(self, delta: Delta) -> list[bytes]: ...
    def error(self, err: ApiError) -> list[bytes]: ...  # the stream's last frames after a failure
    def keepalive(self) -> bytes: ...


async def frames(gen: Generation, renderer: StreamRenderer, on_first_token=None) -> AsyncIterator[bytes]:
    """The SSE body. Starlette cancels this generator when the client disconnects; the finally
    clause then aborts the sequence so its KV cells are freed at the engine's next step. A failed
    generation (a crashed model, say) ends the stream with the protocol's error event."""
    try:
        yield b"".join(renderer.start())
        while True:
            deltas = await gen.next_batch(KEEPALIVE_SECONDS)
            if deltas is None:
                yield renderer.keepalive()
                continue
            if on_first_token is not None and any(d.text or d.reasoning or d.tool_call for d in deltas):
                on_first_token()
                on_first_token = None
            try:
                out, ended = render(renderer, deltas)
            except Exception:  # a renderer's bug must still end the stream with an error event
                log.exception("rendering a stream failed")
                yield b"".join(renderer.error(ApiError(500, "The server failed to render the reply.")))
                return
            yield out
            if ended or gen.done:
                return
    finally:
        gen.close()


def render(renderer: StreamRenderer, deltas: list[Delta]) -> tuple[bytes, bool]:
    """One batch's frames, and whether the stream ends with it (a failed generation's error)."""
    out: list[bytes] = []
    for delta in deltas:
        if delta.finish_reason is FinishReason.ERROR:
            return b"".join(out + renderer.error(from_failure(delta.failure))), True
        out += renderer.on_finish(delta) if delta.finish_reason else renderer.on_delta(delta)
    return b"".join(out), False


async def account(gen: Generation) -> None:
    """Tokens for the access log and the token rate limit: what the request spent, however it
    ended (an aborted one reports what it had prefilled and generated)."""
    finals = await gen.settle()
    if finals:
        usage = usage_of(finals, gen.n)
        note(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


class GenerationResponse(StreamingResponse):
    """An SSE response that aborts its generation however it ends, including a client gone
    before the first byte, when the body generator never started and its finally never runs."""

    def __init__(self, gen: Generation, renderer: StreamRenderer, on_first_token=None):
        super().__init__(frames(gen, renderer, on_first_token), media_type="text/event-stream", headers=HEADERS)
        self._gen = gen

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await account(self._gen)


def response(gen: Generation, renderer: StreamRenderer, on_first_token=None) -> StreamingResponse:
    return GenerationResponse(gen, renderer, on_first_token)


async def collect(gen: Generation, request: Request) -> list[Delta] | None:
    """Run a non-streamed generation to its end: all its Deltas, the final one last. None when
    the client disconnected first; the sequence is then aborted rather than left to run."""

    async def run() -> list[Delta]:
        deltas = [delta async for delta in gen]
        if not gen.done:
            raise RuntimeError("generation ended without a finish")
        return deltas

    task = asyncio.ensure_future(run())
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        return None
    finally:
        watcher.cancel()
        gen.close()


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
