"""Engine Deltas -> Anthropic Messages responses and stream events, rendered from the engine's
Deltas directly, never from OpenAI output."""

from __future__ import annotations

import json
import uuid

from engine import Delta, FinishReason, Usage, assemble

from .. import sse
from ..errors import ApiError, anthropic_body

WAITING = b": waiting\n\n"  # an SSE comment: keeps the connection alive, and no client reads it as an event


def stop_reason(final: Delta) -> str | None:
    if final.finish_reason is FinishReason.LENGTH:
        return "max_tokens"
    if final.finish_reason is FinishReason.TOOL_CALLS:
        return "tool_use"
    if final.finish_reason is FinishReason.STOP:
        return "stop_sequence" if final.stop_sequence is not None else "end_turn"
    return None


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def tool_use_id(engine_id: str) -> str:
    return f"toolu_{engine_id}"


def usage_body(usage: Usage) -> dict:
    # As in the Messages API, input_tokens excludes what the prompt cache served.
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def message_body(model: str, deltas: list[Delta], omit_thinking: bool = False) -> dict:
    """The whole message. With `thinking.display: omitted` a thinking block keeps its place but
    not its text, as in the API."""
    final = deltas[-1]
    text, calls = assemble(deltas)
    reasoning = "".join(d.reasoning for d in deltas)
    content: list[dict] = ([{"type": "thinking", "thinking": "" if omit_thinking else reasoning, "signature": ""}]
                           if reasoning else [])
    content += [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": tool_use_id(c.id), "name": c.name, "input": tool_input(c.arguments)}
                for c in calls]
    return {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(final),
        "stop_sequence": final.stop_sequence,
        "usage": usage_body(final.usage or Usage()),
    }


def tool_input(arguments: str) -> dict:
    """A call's input object; a call cut off by max_tokens has no complete object, so {}."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class EventRenderer:
    """Renders one generation as Messages stream events, each with its `event:` line. Text and
    tool calls become content blocks in the order they appear.

    message_start carries the prompt's usage, which is only known once the engine has given the
    request a slot and found how much of its prompt is cached (its first Delta, with usage and
    nothing else). Until then the stream holds only SSE comments; from then on, ping events."""

    def __init__(self, model: str, prompt_tokens: int, omit_thinking: bool = False):
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._omit_thinking = omit_thinking
        self._started = False  # message_start sent
        self._index = -1  # the open block's index
        self._open: str | None = None  # the open block's type

    def start(self) -> list[bytes]:
        return [WAITING]  # the headers go out now; message_start waits for the slot

    def _message_start(self, usage: Usage | None) -> list[bytes]:
        self._started = True
        prompt = usage or Usage(prompt_tokens=self._prompt_tokens)
        message = {"id": new_id(), "type": "message", "role": "assistant", "model": self._model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": usage_body(Usage(prompt.prompt_tokens, 0, prompt.cached_tokens))}
        return [sse.event("message_start", {"type": "message_start", "message": message}), self.keepalive()]

    def _open_block(self, block: dict) -> list[bytes]:
        frames = self._close_block()
        self._index += 1
        self._open = block["type"]
        return frames + [sse.event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                           "content_block": block})]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [sse.event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _block_delta(self, delta: dict) -> bytes:
        return sse.event("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def on_delta(self, delta: Delta) -> list[bytes]:
        # The admitted Delta (or, should text ever come first, whatever comes first) starts the message.
        frames: list[bytes] = [] if self._started else self._message_start(delta.usage)
        if delta.reasoning:
            if self._open != "thinking":
                frames += self._open_block({"type": "thinking", "thinking": "", "signature": ""})
            if not self._omit_thinking:
                frames.append(self._block_delta({"type": "thinking_delta", "thinking": delta.reasoning}))
        if delta.text:
            if self._open != "text":
                frames += self._open_block({"type": "text", "text": ""})
            frames.append(self._block_delta({"type": "text_delta", "text": delta.text}))
        part = delta.tool_call
        if part is not None:
            if part.name is not None:
                frames += self._open_block({"type": "tool_use", "id": tool_use_id(part.id or ""), "name": part.name,
                                            "input": {}})
            if part.arguments:
                frames.append(self._block_delta({"type": "input_json_delta", "partial_json": part.arguments}))
        return frames

    def on_finish(self, delta: Delta) -> list[bytes]:
        frames = self.on_delta(delta) + self._close_block()
        reason = stop_reason(delta)
        frames.append(sse.event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": delta.stop_sequence},
            "usage": usage_body(delta.usage or Usage()),
        }))
        frames.append(sse.event("message_stop", {"type": "message_stop"}))
        return frames

    def error(self, err: ApiError) -> list[bytes]:
        return [sse.event("error", anthropic_body(err))]

    def keepalive(self) -> bytes:
        return sse.event("ping", {"type": "ping"}) if self._started else WAITING
