"""Protocol-neutral request and result types shared by the engine and its callers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FinishReason(enum.Enum):
    STOP = "stop"  # end-of-generation token or a stop string
    TOOL_CALLS = "tool_calls"  # ended after calling one or more tools
    LENGTH = "length"  # max_tokens reached, or the sequence filled its context
    ABORTED = "aborted"  # the caller went away
    ERROR = "error"


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text


@dataclass(slots=True)
class Message:
    role: str  # system | user | assistant | tool ("developer" is mapped to "system" by callers)
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant turns that called tools
    tool_call_id: str | None = None  # tool turns: the call this answers
    name: str | None = None  # tool turns: the tool's name, where known
    reasoning: str = ""  # assistant turns: their thinking, for templates that show it


@dataclass(slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    param: str = "tools"  # where the caller's request holds the schema, for error messages


class ToolChoiceMode(enum.Enum):
    AUTO = "auto"  # the model decides
    NONE = "none"  # never call
    REQUIRED = "required"  # call at least one tool
    FUNCTION = "function"  # call this one tool


@dataclass(slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str | None = None  # with FUNCTION


class OutputKind(enum.Enum):
    TEXT = "text"
    JSON_OBJECT = "json_object"  # any JSON object
    JSON_SCHEMA = "json_schema"  # JSON valid against `schema`


@dataclass(slots=True)
class ResponseFormat:
    kind: OutputKind = OutputKind.TEXT
    schema: dict | None = None
    param: str = "response_format"  # where the caller's request holds the schema, for error messages


@dataclass(slots=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> bias; -100 bans


@dataclass(slots=True)
class GenerateRequest:
    messages: list[Message] = field(default_factory=list)
    prompt: str | None = None  # raw text, no chat template (legacy completions); wins over messages
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None  # None: until EOG or the context is full
    stop: list[str] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = None  # calls in one reply at most (None: the engine's own cap)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    logprobs: int | None = None  # None: off; else how many top alternatives per token (0..20)
    n: int = 1  # choices: sequences sharing one prefilled prompt, each with its own sampler
    thinking: bool = True  # False: ask the template to turn reasoning off (enable_thinking)
    cache_key: str | None = None  # the client's prompt_cache_key: a routing hint between replicas


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the KV cache instead of computed
    reasoning_tokens: int = 0  # completion tokens spent thinking

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TopLogprob:
    token: str
    bytes: bytes
    logprob: float


@dataclass(slots=True)
class TokenLogprob:
    """One generated token: `token` is the text it added to the content (a token that ends
    mid-character adds "", the next one the whole character), `bytes` its own raw bytes."""

    token: str
    bytes: bytes
    logprob: float
    top: list[TopLogprob] = field(default_factory=list)


@dataclass(slots=True)
class ToolCallDelta:
    """Part of a tool call: the first for a call has id and name, later ones argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Failure:
    """Why a generation ended with FinishReason.ERROR, for the caller's error event or status."""

    code: str  # model_crashed | decode_failed | invalid_request | internal_error
    message: str
    param: str | None = None  # the request field at fault (invalid_request)


@dataclass(slots=True)
class Delta:
    """A piece of a generation. The last one has finish_reason set and carries the final usage."""

    text: str = ""
    reasoning: str = ""  # thinking text, kept apart from the answer
    choice: int = 0  # which of the request's n choices this belongs to
    tool_call: ToolCallDelta | None = None
    logprobs: list[TokenLogprob] | None = None  # when asked for: the tokens making up `text`
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    stop_sequence: str | None = None  # the stop string that ended it, if one did
    failure: Failure | None = None  # with FinishReason.ERROR: what went wrong


@dataclass(slots=True)
class EngineStats:
    """A snapshot of one engine's counters, published by its worker after each step."""

    steps: int = 0  # llama_decode calls
    max_seqs_per_decode: int = 0  # most distinct sequences in one llama_decode
    multi_seq_steps: int = 0  # decodes that carried two or more sequences
    decoded_tokens: int = 0  # tokens in all decodes (prompt chunks and generated): per step = this / steps
    running: int = 0  # sequences holding a slot
    waiting: int = 0  # accepted, waiting for a slot
    free_slots: int = 0
    kv_tokens: int = 0  # KV cells held by running sequences
    cached_tokens: int = 0  # KV cells kept in idle slots for prefix reuse
    reused_tokens: int = 0  # prompt tokens served from the cache since start
    prompt_tokens: int = 0  # prefilled since start
    generated_tokens: int = 0
    aborted: int = 0  # sequences ended because their caller went away
    draft_tokens: int = 0  # prompt-lookup guesses fed to decodes (speculative decoding)
    draft_accepted: int = 0  # of those, confirmed by sampling
