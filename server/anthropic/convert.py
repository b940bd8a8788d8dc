"""Anthropic Messages request -> engine GenerateRequest, and engine Deltas -> Messages responses
and stream events. Rendered from the engine's Deltas directly, never from OpenAI output."""

from __future__ import annotations

import dataclasses
import json
import uuid

from engine import (
    Delta,
    FinishReason,
    GenerateRequest,
    Message,
    OutputKind,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    Usage,
    assemble,
)

from .. import sse
from ..errors import ApiError, anthropic_body
from .protocol import Block, CountTokensRequest, InputMessage, MessagesRequest, ToolIn

# Earlier turns' reasoning may be sent back; it is not part of what the model reads again.
SKIPPED_BLOCKS = {"thinking", "redacted_thinking"}
MEDIA_BLOCKS = {"image", "document", "search_result"}
CHOICES = {"auto": ToolChoiceMode.AUTO, "any": ToolChoiceMode.REQUIRED, "tool": ToolChoiceMode.FUNCTION,
           "none": ToolChoiceMode.NONE}
EMPTY_SCHEMA = {"type": "object", "properties": {}}


def stop_reason(final: Delta) -> str | None:
    if final.finish_reason is FinishReason.LENGTH:
        return "max_tokens"
    if final.finish_reason is FinishReason.TOOL_CALLS:
        return "tool_use"
    if final.finish_reason is FinishReason.STOP:
        return "stop_sequence" if final.stop_sequence is not None else "end_turn"
    return None


def to_request(body: CountTokensRequest, defaults: SamplingParams) -> GenerateRequest:
    refuse_unsupported(body)
    messages = [Message("system", system_text(body.system))] if body.system else []
    for i, m in enumerate(body.messages):
        messages += to_messages(i, m)
    choice = body.tool_choice
    tools = dict(
        tools=[to_tool(i, t) for i, t in enumerate(body.tools or [])],
        tool_choice=ToolChoice(CHOICES[choice.type], choice.name) if choice else ToolChoice(),
        parallel_tool_calls=not (choice and choice.disable_parallel_tool_use),
        response_format=to_response_format(body),
    )
    # As in the API, a model thinks only when asked to.
    tools["thinking"] = bool(body.thinking and body.thinking.type != "disabled")
    if not isinstance(body, MessagesRequest):  # count_tokens: only the prompt matters
        return GenerateRequest(messages=messages, sampling=defaults, **tools)
    given = {"temperature": body.temperature, "top_p": body.top_p, "top_k": body.top_k}
    return GenerateRequest(
        messages=messages,
        sampling=dataclasses.replace(defaults, **{k: v for k, v in given.items() if v is not None}),
        max_tokens=body.max_tokens,
        stop=[s for s in body.stop_sequences or [] if s],
        **tools,
    )


def to_response_format(body: CountTokensRequest) -> ResponseFormat:
    fmt = body.output_config.format if body.output_config else None
    return ResponseFormat(OutputKind.JSON_SCHEMA, fmt.schema_, param="output_config.format.schema") if fmt else ResponseFormat()


def refuse_unsupported(body: CountTokensRequest) -> None:
    """Fields that would change the answer but are not implemented: a 400 that names them.
    `output_config.effort` and `thinking` are accepted; a model without reasoning ignores them."""
    if isinstance(body, MessagesRequest) and body.container is not None:
        raise ApiError(400, "container: code-execution containers are not available on this server", param="container")
    if body.tool_choice and body.tool_choice.type == "tool" and not body.tool_choice.name:
        raise ApiError(400, "tool_choice: type 'tool' needs a 'name'", param="tool_choice.name")


def to_tool(index: int, tool: ToolIn) -> ToolSpec:
    if tool.type not in (None, "custom"):
        raise ApiError(400, f"tools.{index}: server tool '{tool.type}' is not available on this server",
                       param=f"tools.{index}.type")
    return ToolSpec(tool.name, tool.description, tool.input_schema or EMPTY_SCHEMA, param=f"tools.{index}.input_schema")


def system_text(system: str | list[Block]) -> str:
    if isinstance(system, str):
        return system
    for j, block in enumerate(system):
        if block.type != "text" or block.text is None:
            raise ApiError(400, f"system.{j}: only text blocks are allowed in system", param=f"system.{j}")
    return "\n".join(b.text or "" for b in system)


def to_messages(index: int, message: InputMessage) -> list[Message]:
    """One Anthropic turn: tool_result blocks become tool messages ahead of the user's text;
    tool_use blocks become the assistant message's tool calls."""
    if isinstance(message.content, str):
        return [Message(message.role, message.content)]
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for j, block in enumerate(message.content):
        where = f"messages.{index}.content.{j}"
        extra = block.model_extra or {}
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type == "tool_use" and message.role == "assistant":
            calls.append(ToolCall(str(extra.get("id", "")), str(extra.get("name", "")), json.dumps(extra.get("input", {}))))
        elif block.type == "tool_result" and message.role == "user":
            results.append(Message("tool", tool_result_text(where, extra.get("content", "")),
                                   tool_call_id=str(extra.get("tool_use_id", ""))))
        elif block.type in MEDIA_BLOCKS:
            raise ApiError(400, f"{where}: '{block.type}' blocks are not supported by this text-only model", param=where)
        elif block.type not in SKIPPED_BLOCKS:
            raise ApiError(400, f"{where}: '{block.type}' blocks are not allowed in a {message.role} turn", param=where)
    turn = [Message(message.role, "\n".join(texts), tool_calls=calls)] if texts or calls else []
    return results + turn


def tool_result_text(where: str, content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in content):
        return "\n".join(str(b.get("text", "")) for b in content)
    raise ApiError(400, f"{where}.content: a tool result holds a string or text blocks", param=f"{where}.content")


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


def message_body(model: str, deltas: list[Delta]) -> dict:
    final = deltas[-1]
    text, calls = assemble(deltas)
    reasoning = "".join(d.reasoning for d in deltas)
    content: list[dict] = [{"type": "thinking", "thinking": reasoning, "signature": ""}] if reasoning else []
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
    tool calls become content blocks in the order they appear."""

    def __init__(self, model: str, prompt_tokens: int):
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._index = -1  # the open block's index
        self._open: str | None = None  # the open block's type

    def start(self) -> list[bytes]:
        message = {"id": new_id(), "type": "message", "role": "assistant", "model": self._model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": usage_body(Usage(prompt_tokens=self._prompt_tokens))}
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
        frames: list[bytes] = []
        if delta.reasoning:
            if self._open != "thinking":
                frames += self._open_block({"type": "thinking", "thinking": "", "signature": ""})
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
        return sse.event("ping", {"type": "ping"})
