"""Protocol-neutral request and result types shared by the engine and its callers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FinishReason(enum.Enum):
    STOP = "stop"  # end-of-generation token or a stop string
    LENGTH = "length"  # max_tokens reached, or the sequence filled its context
    ABORTED = "aborted"  # the caller went away
    ERROR = "error"


@dataclass(slots=True)
class Message:
    role: str  # system | user | assistant | tool ("developer" is mapped to "system" by callers)
    content: str = ""


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


@dataclass(slots=True)
class GenerateRequest:
    messages: list[Message]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None  # None: until EOG or the context is full
    stop: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the KV cache instead of computed

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Delta:
    """A piece of a generation. The last one has finish_reason set and carries the final usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    stop_sequence: str | None = None  # the stop string that ended it, if one did
