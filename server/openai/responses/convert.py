"""A Responses request -> the engine's GenerateRequest (and what the Response echoes back); a
finished Response -> the assistant turn a continuation replays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine import GenerateRequest, Message, OutputKind, ResponseFormat, SamplingParams, ToolCall, ToolChoiceMode

from ...errors import ApiError
from .items import Conversation, InputReader, custom_arguments
from .protocol import InputTokensRequest, ResponsesRequest
from .store import ResponseStore
from .tools import ToolSet, read_tool_choice, read_tools

LOGPROBS = "message.output_text.logprobs"


@dataclass
class Turn:
    """One request, read: its messages (history first), its own input items and its tools."""

    messages: list[Message]
    conversation: Conversation
    tools: ToolSet
    history: list[Message]  # what previous_response_id brought


def read(body: InputTokensRequest, store: ResponseStore) -> Turn:
    refuse_unsupported(body)
    history: list[Message] = []
    if body.previous_response_id:
        previous = store.get(body.previous_response_id)
        if previous is None:
            raise ApiError(404, f"Previous response with id '{body.previous_response_id}' not found.",
                           param="previous_response_id", code="previous_response_not_found")
        history = list(previous.history)
    names = {c.id: c.name for m in history for c in m.tool_calls}
    conversation = InputReader(store.item, names).read(body.input)
    tools = read_tools(body.tools, conversation.extra_tools)
    system = [Message("system", body.instructions)] if body.instructions else []
    return Turn(system + history + conversation.messages, conversation, tools, history)


def refuse_unsupported(body: InputTokensRequest) -> None:
    """Fields that would change the answer but are not implemented: a 400 that names them."""
    refused = {"conversation": body.conversation is not None,
               "background": bool(getattr(body, "background", None)),
               "prompt": getattr(body, "prompt", None) is not None}
    for name, bad in refused.items():
        if bad:
            raise ApiError(400, f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")


def to_request(body: InputTokensRequest, turn: Turn, defaults: SamplingParams) -> GenerateRequest:
    given = {"temperature": getattr(body, "temperature", None), "top_p": getattr(body, "top_p", None)}
    choice = read_tool_choice(body.tool_choice, turn.tools)
    # text.format is the shape of a final message; a turn that must call a tool has none.
    forced = choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)
    return GenerateRequest(
        messages=turn.messages,
        sampling=dataclasses.replace(defaults, **{k: v for k, v in given.items() if v is not None}),
        max_tokens=getattr(body, "max_output_tokens", None),
        tools=turn.tools.specs,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        max_tool_calls=getattr(body, "max_tool_calls", None),
        response_format=ResponseFormat() if forced else response_format(body),
        logprobs=logprobs(body, turn.tools),
        thinking=not (body.reasoning and body.reasoning.effort == "none"),
        cache_key=getattr(body, "prompt_cache_key", None),
    )


def response_format(body: InputTokensRequest) -> ResponseFormat:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return ResponseFormat()
    if fmt.type == "json_object":
        return ResponseFormat(OutputKind.JSON_OBJECT, param="text.format")
    if fmt.schema_ is None:
        raise ApiError(400, "text.format of type 'json_schema' needs 'schema'", param="text.format.schema")
    return ResponseFormat(OutputKind.JSON_SCHEMA, fmt.schema_, param="text.format.schema")


def logprobs(body: InputTokensRequest, tools: ToolSet) -> int | None:
    if not isinstance(body, ResponsesRequest) or LOGPROBS not in (body.include or []):
        return None
    if tools.specs and body.tool_choice != "none":
        raise ApiError(400, "logprobs cannot be combined with tools on this server", param="include")
    return body.top_logprobs or 0


def echo_fields(body: ResponsesRequest) -> dict:
    """What the Response repeats of the request (with OpenAI's defaults where it gave none)."""
    reasoning = body.reasoning.model_dump(exclude_none=True) if body.reasoning else {}
    text = body.text.model_dump(by_alias=True, exclude_none=True) if body.text else {}
    return {
        "instructions": body.instructions, "max_output_tokens": body.max_output_tokens, "max_tool_calls": body.max_tool_calls,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.store, "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": body.tool_choice or "auto", "tools": body.tools or [], "top_logprobs": body.top_logprobs or 0,
        "top_p": 1.0 if body.top_p is None else body.top_p, "truncation": body.truncation or "disabled",
        "metadata": body.metadata or {}, "user": body.user, "prompt_cache_key": body.prompt_cache_key,
        "safety_identifier": body.safety_identifier, "service_tier": "default",
    }


def assistant_turn(output: list[dict]) -> list[Message]:
    """The Response's output as the assistant turn a continuation replays (empty if it said
    nothing)."""
    text, reasoning, calls = [], [], []
    for item in output:
        kind = item["type"]
        if kind == "message":
            text += [p.get("text", "") for p in item["content"]]
        elif kind == "reasoning":
            reasoning += [p.get("text", "") for p in item.get("content") or []]
        elif kind in ("function_call", "custom_tool_call"):
            name = f"{item['namespace']}.{item['name']}" if item.get("namespace") else item["name"]
            arguments = item["arguments"] if kind == "function_call" else custom_arguments(item["input"])
            calls.append(ToolCall(item["call_id"], name, arguments))
    if not (text or calls):
        return []
    return [Message("assistant", "".join(text), tool_calls=calls, reasoning="".join(reasoning))]


def turn_starts(messages: list[Message]) -> list[int]:
    """For truncation "auto": where each turn after the oldest begins (a user message). Dropping
    the first k turns keeps the leading system messages and messages[starts[k - 1]:]."""
    first = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    return [i for i in range(first + 1, len(messages)) if messages[i].role == "user"]


def drop_turns(messages: list[Message], starts: list[int], k: int) -> list[Message]:
    first = next(i for i, m in enumerate(messages) if m.role != "system")
    return messages[:first] + messages[starts[k - 1]:]
