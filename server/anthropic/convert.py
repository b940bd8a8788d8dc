"""Anthropic Messages request -> engine GenerateRequest, and engine Deltas -> Messages responses
and stream events. Rendered from the engine's Deltas directly, never from OpenAI output."""

from __future__ import annotations

import dataclasses
import uuid

from engine import Delta, FinishReason, GenerateRequest, Message, SamplingParams, Usage

from .. import sse
from ..errors import ApiError
from .protocol import Block, CountTokensRequest, MessagesRequest

# Earlier turns' reasoning may be sent back; it is not part of what the model reads again.
SKIPPED_BLOCKS = {"thinking", "redacted_thinking"}
MEDIA_BLOCKS = {"image", "document", "search_result"}
TOOL_BLOCKS = {"tool_use", "tool_result", "server_tool_use", "web_search_tool_result"}


def stop_reason(final: Delta) -> str | None:
    if final.finish_reason is FinishReason.LENGTH:
        return "max_tokens"
    if final.finish_reason is FinishReason.STOP:
        return "stop_sequence" if final.stop_sequence is not None else "end_turn"
    return None


def to_request(body: CountTokensRequest, defaults: SamplingParams) -> GenerateRequest:
    refuse_unsupported(body)
    messages = [Message("system", system_text(body.system))] if body.system else []
    messages += [Message(m.role, content_text(i, m.content)) for i, m in enumerate(body.messages)]
    if not isinstance(body, MessagesRequest):  # count_tokens: only the prompt matters
        return GenerateRequest(messages=messages, sampling=defaults)
    given = {"temperature": body.temperature, "top_p": body.top_p, "top_k": body.top_k}
    return GenerateRequest(
        messages=messages,
        sampling=dataclasses.replace(defaults, **{k: v for k, v in given.items() if v is not None}),
        max_tokens=body.max_tokens,
        stop=[s for s in body.stop_sequences or [] if s],
    )


def refuse_unsupported(body: CountTokensRequest) -> None:
    """Fields that would change the answer but are not implemented: a 400 that names them.
    `output_config.effort` and `thinking` are accepted; a model without reasoning ignores them."""
    if body.output_config and body.output_config.format:
        raise ApiError(400, "output_config.format: structured outputs are not supported by this server yet",
                       param="output_config.format")
    if isinstance(body, MessagesRequest) and body.container is not None:
        raise ApiError(400, "container: code-execution containers are not available on this server", param="container")
    if body.tools:
        raise ApiError(400, "tools: tool use is not supported by this server yet", param="tools")
    if body.tool_choice and body.tool_choice.get("type") not in ("auto", "none"):
        raise ApiError(400, "tool_choice: requires tools, which this server does not support yet", param="tool_choice")


def system_text(system: str | list[Block]) -> str:
    if isinstance(system, str):
        return system
    for j, block in enumerate(system):
        if block.type != "text" or block.text is None:
            raise ApiError(400, f"system.{j}: only text blocks are allowed in system", param=f"system.{j}")
    return "\n".join(b.text or "" for b in system)


def content_text(index: int, content: str | list[Block]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content):
        where = f"messages.{index}.content.{j}"
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type in MEDIA_BLOCKS:
            raise ApiError(400, f"{where}: '{block.type}' blocks are not supported by this text-only model", param=where)
        elif block.type in TOOL_BLOCKS:
            raise ApiError(400, f"{where}: '{block.type}' blocks need tool use, which this server does not support yet",
                           param=where)
        elif block.type not in SKIPPED_BLOCKS:
            raise ApiError(400, f"{where}: unknown content block type '{block.type}'", param=where)
    return "\n".join(texts)


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage_body(usage: Usage) -> dict:
    # As in the Messages API, input_tokens excludes what the prompt cache served.
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def message_body(model: str, text: str, final: Delta) -> dict | None:
    if stop_reason(final) is None:
        return None
    return {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason(final),
        "stop_sequence": final.stop_sequence,
        "usage": usage_body(final.usage or Usage()),
    }


class EventRenderer:
    """Renders one generation as Messages stream events, each with its `event:` line."""

    def __init__(self, model: str, prompt_tokens: int):
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._block_open = False

    def start(self) -> list[bytes]:
        message = {"id": new_id(), "type": "message", "role": "assistant", "model": self._model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": usage_body(Usage(prompt_tokens=self._prompt_tokens))}
        return [sse.event("message_start", {"type": "message_start", "message": message}), self.keepalive()]

    def on_delta(self, delta: Delta) -> list[bytes]:
        if not delta.text:
            return []
        frames = []
        if not self._block_open:
            self._block_open = True
            frames.append(sse.event("content_block_start", {"type": "content_block_start", "index": 0,
                                                            "content_block": {"type": "text", "text": ""}}))
        frames.append(sse.event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta", "text": delta.text}}))
        return frames

    def on_finish(self, delta: Delta) -> list[bytes]:
        frames = self.on_delta(delta)
        reason = stop_reason(delta)
        if reason is None:  # the engine failed mid-stream: say so in the stream itself
            frames.append(sse.event("error", {"type": "error", "error": {"type": "api_error",
                                                                       "message": "generation failed"}}))
            return frames
        if self._block_open:
            frames.append(sse.event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        frames.append(sse.event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": delta.stop_sequence},
            "usage": usage_body(delta.usage or Usage()),
        }))
        frames.append(sse.event("message_stop", {"type": "message_stop"}))
        return frames

    def keepalive(self) -> bytes:
        return sse.event("ping", {"type": "ping"})
