"""Anthropic Messages request -> engine GenerateRequest (the replies are rendered in render.py)."""

from __future__ import annotations

import dataclasses
import json

from engine import (
    GenerateRequest,
    Message,
    OutputKind,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)

from ..errors import ApiError
from .protocol import Block, CountTokensRequest, InputMessage, MessagesRequest, ToolIn

# Earlier turns' reasoning may be sent back; it is not part of what the model reads again.
SKIPPED_BLOCKS = {"thinking", "redacted_thinking"}
MEDIA_BLOCKS = {"image", "document", "search_result"}
TOOL_CHANGES = {"tool_addition", "tool_removal"}  # mid-conversation tool changes, in system turns
CHOICES = {"auto": ToolChoiceMode.AUTO, "any": ToolChoiceMode.REQUIRED, "tool": ToolChoiceMode.FUNCTION,
           "none": ToolChoiceMode.NONE}
EMPTY_SCHEMA = {"type": "object", "properties": {}}
# Claude Code's first system block is an attribution header whose suffix changes with every
# conversation; rendered, it would put a new token first in each prompt and defeat the prefix cache.
BILLING_HEADER = "x-anthropic-billing-header:"


def to_request(body: CountTokensRequest, defaults: SamplingParams) -> GenerateRequest:
    refuse_unsupported(body)
    messages = to_conversation(body)
    choice = body.tool_choice
    tools = dict(
        tools=[to_tool(i, t) for i, t in loaded_tools(body)],
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


def to_conversation(body: CountTokensRequest) -> list[Message]:
    """The prompt's messages. A system turn inside `messages` stays where it is, so everything
    before it is the same prompt prefix as in the requests before it (and stays cached)."""
    system = system_text(body.system) if body.system else None
    messages = [Message("system", system)] if system is not None else []
    last_user = last_user_index(body.messages)
    for i, m in enumerate(body.messages):
        if m.role != "system":
            messages += to_messages(i, m)
        elif not (m.clear_at == "next_user_message" and i < last_user):  # cleared once a user turn follows
            messages += system_turn(i, m)
    return messages


def last_user_index(messages: list[InputMessage]) -> int:
    return max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)


def loaded_tools(body: CountTokensRequest) -> list[tuple[int, ToolIn]]:
    """The tools the model sees, with their index in `tools`. As with the API's tool search, a
    `defer_loading` tool stays out of the prompt until the conversation loads it (a tool_reference
    or a tool_addition names it) or tool_choice names it. Loaded ones come after the others: the
    prompt then changes only after the tools it already had, and the cache keeps its prefix."""
    tools = list(enumerate(body.tools or []))
    wanted = referenced_tools(body.messages) | ({body.tool_choice.name} if body.tool_choice else set())
    return [(i, t) for i, t in tools if not t.defer_loading] + [(i, t) for i, t in tools
                                                                 if t.defer_loading and t.name in wanted]


def referenced_tools(messages: list[InputMessage]) -> set[str]:
    names: set[str] = set()
    for m in messages:
        for block in m.content if isinstance(m.content, list) else ():
            extra = block.model_extra or {}
            if block.type == "tool_result" and isinstance(extra.get("content"), list):
                names.update(str(b.get("tool_name")) for b in extra["content"]
                             if isinstance(b, dict) and b.get("type") == "tool_reference")
            elif block.type == "tool_addition":
                names.add(tool_change_name(extra))
    return names


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
    for i, m in enumerate(body.messages):
        where = f"messages.{i}"
        if m.role != "system" and (m.clear_at or m.output_config):
            field = "clear_at" if m.clear_at else "output_config"
            raise ApiError(400, f"{where}.{field}: only system messages may carry it", param=f"{where}.{field}")
        if m.output_config and m.output_config.format:
            raise ApiError(400, f"{where}.output_config.format: an output format can only be set for the whole "
                                "request (output_config.format)", param=f"{where}.output_config.format")


def to_tool(index: int, tool: ToolIn) -> ToolSpec:
    if tool.type not in (None, "custom"):
        raise ApiError(400, f"tools.{index}: server tool '{tool.type}' is not available on this server",
                       param=f"tools.{index}.type")
    return ToolSpec(tool.name, tool.description, tool.input_schema or EMPTY_SCHEMA, param=f"tools.{index}.input_schema")


def system_text(system: str | list[Block]) -> str | None:
    """The top-level system prompt; None when nothing is left of it."""
    if isinstance(system, str):
        return system
    for j, block in enumerate(system):
        if block.type != "text" or block.text is None:
            raise ApiError(400, f"system.{j}: only text blocks are allowed in system", param=f"system.{j}")
    kept = [b.text or "" for b in system if not is_billing(b)]
    return "\n".join(kept) if kept else None


def is_billing(block: Block) -> bool:
    return block.type == "text" and (block.text or "").startswith(BILLING_HEADER)


def system_turn(index: int, message: InputMessage) -> list[Message]:
    """A system message inside `messages`: its text, and a line per tool it adds or removes. The
    line only tells the model; tools it can call are those in `tools`."""
    if isinstance(message.content, str):
        return [Message("system", message.content)] if message.content else []
    parts: list[str] = []
    for j, block in enumerate(message.content):
        where = f"messages.{index}.content.{j}"
        if block.type == "text" and block.text is not None:
            parts += [] if is_billing(block) else [block.text]
        elif block.type in TOOL_CHANGES:
            name = tool_change_name(block.model_extra or {})
            if not name:
                raise ApiError(400, f"{where}.tool: names no tool", param=f"{where}.tool")
            parts.append(f"Tool {'added' if block.type == 'tool_addition' else 'removed'}: {name}")
        else:
            raise ApiError(400, f"{where}: '{block.type}' blocks are not allowed in a system turn", param=where)
    return [Message("system", "\n".join(parts))] if parts else []


def tool_change_name(extra: dict) -> str:
    """The tool a tool_addition (`tool.definition.name`) or tool_removal (`tool.name`) names."""
    tool = extra.get("tool")
    if not isinstance(tool, dict):
        return ""
    definition = tool.get("definition")
    name = definition.get("name") if isinstance(definition, dict) else tool.get("name")
    return name if isinstance(name, str) else ""


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
    """A tool result's content: a string, or text and tool_reference blocks (a tool search's
    answer: the tool's definition is in `tools`, so a line naming it is enough here)."""
    if isinstance(content, str) or content is None:
        return content or ""
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.content: a tool result holds a string or a list of blocks", param=f"{where}.content")
    parts = []
    for k, block in enumerate(content):
        at = f"{where}.content.{k}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "tool_reference" and isinstance(block.get("tool_name"), str):
            parts.append(f"Tool loaded: {block['tool_name']}")
        elif kind in MEDIA_BLOCKS:
            raise ApiError(400, f"{at}: '{kind}' blocks are not supported by this text-only model", param=at)
        else:
            raise ApiError(400, f"{at}: a tool result holds text and tool_reference blocks", param=at)
    return "\n".join(parts)
