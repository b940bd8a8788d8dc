"""OpenAI chat request -> engine GenerateRequest, and engine Deltas -> OpenAI responses."""

from __future__ import annotations

import dataclasses
import math
import re
import time
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
    usage_of,
)

from .. import sse
from ..errors import ApiError, openai_body
from .protocol import ChatCompletionRequest, ChatMessage

FINISH_REASONS = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length", FinishReason.TOOL_CALLS: "tool_calls"}
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "frequency_penalty", "presence_penalty",
                   "repetition_penalty", "seed")
MAX_STOP_STRINGS = 4
MAX_LOGIT_BIAS = 1024  # entries: bounds the work and the sampler a request can ask for
_TOKEN_ID = re.compile(r"-?[0-9]{1,10}")  # a sign lets the engine name a negative id as out of vocabulary


def to_request(body: ChatCompletionRequest, defaults: SamplingParams) -> GenerateRequest:
    refuse_unsupported(body)
    given = {name: getattr(body, name) for name in SAMPLING_FIELDS if getattr(body, name) is not None}
    return GenerateRequest(
        messages=[to_message(i, m) for i, m in enumerate(body.messages)],
        sampling=dataclasses.replace(defaults, **given, logit_bias=to_logit_bias(body.logit_bias)),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=to_stop(body.stop),
        tools=[ToolSpec(t.function.name, t.function.description, t.function.parameters or
                        {"type": "object", "properties": {}}, param=f"tools[{i}].function.parameters")
               for i, t in enumerate(body.tools or [])],
        tool_choice=to_tool_choice(body),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=to_response_format(body),
        logprobs=to_logprobs(body),
        n=body.n,
        # Only "none" can be honoured (by templates with enable_thinking); the others are accepted.
        thinking=body.reasoning_effort != "none",
        cache_key=body.prompt_cache_key,
    )


def to_tool_choice(body: ChatCompletionRequest) -> ToolChoice:
    choice = body.tool_choice
    if choice is None:
        return ToolChoice(ToolChoiceMode.AUTO)
    if isinstance(choice, str):
        return ToolChoice(ToolChoiceMode(choice))
    return ToolChoice(ToolChoiceMode.FUNCTION, choice.function.name)


def to_response_format(body: ChatCompletionRequest) -> ResponseFormat:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return ResponseFormat()
    if fmt.type == "json_object":
        return ResponseFormat(OutputKind.JSON_OBJECT)
    if fmt.json_schema is None:
        raise ApiError(400, "response_format of type 'json_schema' needs 'json_schema'", param="response_format.json_schema")
    return ResponseFormat(OutputKind.JSON_SCHEMA, fmt.json_schema.schema_, param="response_format.json_schema.schema")


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """Parameters that would change the answer but are not implemented yet: a 400 that names them,
    never a silent ignore. A value that asks for nothing (n=1, logprobs=false...) is fine."""
    inert = {
        "audio": body.audio is None,
        "modalities": body.modalities in (None, ["text"]),
        "prediction": body.prediction is None,
        "web_search_options": body.web_search_options is None,
        "functions": not body.functions,
        "function_call": body.function_call in (None, "none"),
        "verbosity": body.verbosity in (None, "medium"),
    }
    for name, ok in inert.items():
        if not ok:
            raise ApiError(400, f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")


def to_logprobs(body: ChatCompletionRequest) -> int | None:
    if body.top_logprobs is not None and not body.logprobs:
        raise ApiError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    if not body.logprobs:
        return None
    if body.tools and body.tool_choice != "none":
        raise ApiError(400, "'logprobs' cannot be combined with tools on this server", param="logprobs")
    return body.top_logprobs or 0


def logprobs_body(deltas: list[Delta]) -> list[dict]:
    return [{"token": e.token, "logprob": e.logprob, "bytes": list(e.bytes),
             "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in e.top]}
            for d in deltas for e in d.logprobs or []]


def to_logit_bias(bias: dict[str, float] | None) -> dict[int, float]:
    """Token id -> bias. Whether an id is inside the vocabulary is the engine's check."""
    bias = bias or {}
    if len(bias) > MAX_LOGIT_BIAS:
        raise ApiError(400, f"logit_bias takes at most {MAX_LOGIT_BIAS} entries; got {len(bias)}", param="logit_bias")
    return {token_id(key): bias_value(value) for key, value in bias.items()}


def token_id(key: str) -> int:
    # ASCII digits and one optional "-" only: a test with lstrip("-") and isdigit() let "--5" and
    # "²" reach int() (a 500), "٣" pass as 3, and a key past int()'s digit limit raise.
    if not _TOKEN_ID.fullmatch(key):
        raise ApiError(400, f"logit_bias keys are token ids (decimal integers); got {key[:32]!r}", param="logit_bias")
    return int(key)


def bias_value(value: float) -> float:
    if not (math.isfinite(value) and -100 <= value <= 100):
        raise ApiError(400, f"logit_bias values lie in -100..100; got {value}", param="logit_bias")
    return float(value)


def to_message(index: int, msg: ChatMessage) -> Message:
    role = "system" if msg.role == "developer" else msg.role
    if msg.role == "tool" and not msg.tool_call_id:
        raise ApiError(400, "a tool message needs 'tool_call_id'", param=f"messages[{index}].tool_call_id")
    calls = [ToolCall(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
    text = to_text(index, msg)
    return Message(role=role, content=text, tool_calls=calls, tool_call_id=msg.tool_call_id, name=msg.name,
                   reasoning=msg.reasoning_content or "")


def to_text(index: int, msg: ChatMessage) -> str:
    if msg.content is None or isinstance(msg.content, str):
        return msg.content or ""
    texts = []
    for j, part in enumerate(msg.content):
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"content part of type '{part.type}' is not supported by this text-only model",
                           param=f"messages[{index}].content[{j}]")
        texts.append(part.text)
    return "\n".join(texts)


def to_stop(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_STRINGS:
        raise ApiError(400, f"'stop' takes at most {MAX_STOP_STRINGS} strings", param="stop")
    return [s for s in stops if s]


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage_body(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def call_id(engine_id: str) -> str:
    return f"call_{engine_id}"


def choice_body(index: int, deltas: list[Delta], logprobs: bool) -> dict:
    text, calls = assemble(deltas)
    message: dict = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    reasoning = "".join(d.reasoning for d in deltas)
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [{"id": call_id(c.id), "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
    return {
        "index": index,
        "message": message,
        "logprobs": {"content": logprobs_body(deltas), "refusal": None} if logprobs else None,
        "finish_reason": FINISH_REASONS[deltas[-1].finish_reason],
    }


def completion_body(model: str, deltas: list[Delta], logprobs: bool = False) -> dict:
    finals = sorted((d for d in deltas if d.finish_reason is not None), key=lambda d: d.choice)
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice_body(f.choice, [d for d in deltas if d.choice == f.choice], logprobs) for f in finals],
        "usage": usage_body(usage_of(finals, len(finals))),
        "system_fingerprint": None,
    }


def tool_call_chunk(delta: Delta) -> dict:
    """A call's first chunk names it; the ones after carry only argument text."""
    part = delta.tool_call
    if part.name is not None:
        return {"index": part.index, "id": call_id(part.id or ""), "type": "function",
                "function": {"name": part.name, "arguments": part.arguments}}
    return {"index": part.index, "function": {"arguments": part.arguments}}


class ChunkRenderer:
    """Renders one generation (n choices) as `chat.completion.chunk` SSE frames."""

    def __init__(self, model: str, include_usage: bool, n: int = 1):
        self._base = {"id": new_id(), "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model, "system_fingerprint": None}
        self._include_usage = include_usage
        self._n = n
        self._finals: list[Delta] = []

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None, logprobs: list[dict] | None = None) -> bytes:
        lp = {"content": logprobs, "refusal": None} if logprobs is not None else None
        choice = {"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish_reason}
        chunk = {**self._base, "choices": [choice]}
        if self._include_usage:
            chunk["usage"] = None
        return sse.data(chunk)

    def start(self) -> list[bytes]:
        return [self._chunk(i, {"role": "assistant", "content": ""}) for i in range(self._n)]

    def on_delta(self, delta: Delta) -> list[bytes]:
        lp = logprobs_body([delta]) if delta.logprobs is not None else None
        frames = [self._chunk(delta.choice, {"reasoning_content": delta.reasoning})] if delta.reasoning else []
        if delta.text or lp:
            frames.append(self._chunk(delta.choice, {"content": delta.text}, logprobs=lp))
        if delta.tool_call is not None:
            frames.append(self._chunk(delta.choice, {"tool_calls": [tool_call_chunk(delta)]}))
        return frames

    def on_finish(self, delta: Delta) -> list[bytes]:
        frames = self.on_delta(delta)
        frames.append(self._chunk(delta.choice, {}, FINISH_REASONS[delta.finish_reason]))
        self._finals.append(delta)
        if len(self._finals) < self._n:
            return frames
        if self._include_usage:
            frames.append(sse.data({**self._base, "choices": [], "usage": usage_body(usage_of(self._finals, self._n))}))
        frames.append(sse.DONE)
        return frames

    def error(self, err: ApiError) -> list[bytes]:
        return [sse.data(openai_body(err))]

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"
