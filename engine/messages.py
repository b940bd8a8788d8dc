"""What crosses the boundary between the server and a model's worker process (pickled over a
multiprocessing connection). Every request carries the caller's request id `rid`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import ModelSpec
from .errors import EngineError
from .types import Delta, EngineStats, GenerateRequest

# --- server -> worker ---------------------------------------------------------------------------


@dataclass(slots=True)
class Start:
    spec: ModelSpec
    log_level: str = "INFO"
    backend: str | None = None  # "module:factory" building a stand-in backend (tests); None: llama.cpp


@dataclass(slots=True)
class Submit:
    rid: int
    request: GenerateRequest


@dataclass(slots=True)
class CountTokens:
    rid: int
    request: GenerateRequest


@dataclass(slots=True)
class Tokenize:
    """Tokens of `text` (add_special: the BOS the engine adds to prompts), or else of the prompt
    that `request` renders to; with each token's bytes when `pieces`."""

    rid: int
    request: GenerateRequest | None = None
    text: str | None = None
    add_special: bool = False
    pieces: bool = False


@dataclass(slots=True)
class Detokenize:
    rid: int
    tokens: list[int]


@dataclass(slots=True)
class RenderPrompt:
    """The prompt text that `request`'s messages render to with the model's chat template."""

    rid: int
    request: GenerateRequest


@dataclass(slots=True)
class Embed:
    rid: int
    inputs: list  # str or token-id lists


@dataclass(slots=True)
class Abort:
    rid: int


@dataclass(slots=True)
class Shutdown:
    pass


# --- worker -> server ---------------------------------------------------------------------------


@dataclass(slots=True)
class ModelInfo:
    """What the server shows about a loaded model (in /v1/models and /stats)."""

    pid: int
    n_seq: int
    memory_bytes: int = 0
    embedding_size: int = 0  # embedding models only
    template: str = ""  # gguf | builtin:<name> | fallback:chatml (no template in the GGUF)


@dataclass(slots=True)
class Ready:
    info: ModelInfo


@dataclass(slots=True)
class LoadFailed:
    error: EngineError


@dataclass(slots=True)
class Accepted:
    """The request was checked and queued; its Deltas follow in Step messages."""

    rid: int
    prompt_tokens: int


@dataclass(slots=True)
class Refused:
    """The request (or count, or embedding) failed before anything was queued."""

    rid: int
    error: EngineError


@dataclass(slots=True)
class Result:
    rid: int
    value: object  # count_tokens: int; embed: (vectors, n_tokens); tokenize: Tokens; detokenize, render: str


@dataclass(slots=True)
class Step:
    """One engine step: its Deltas for every request, and the engine's counters after it."""

    deltas: list[tuple[int, Delta]] = field(default_factory=list)
    stats: EngineStats | None = None
