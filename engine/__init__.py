"""ggserve's inference engine: continuous batching over llama.cpp. Knows nothing of HTTP."""

from .config import ModelsConfig, ModelSpec, builtin_default, load_models, single_model
from .engine import Engine, EngineStats
from .errors import (
    ConfigError,
    ContextLengthExceeded,
    EngineError,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    Overloaded,
)
from .generation import Generation, assemble, usage_of
from .registry import Registry
from .types import (
    Delta,
    FinishReason,
    GenerateRequest,
    Message,
    OutputKind,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    Usage,
)

__all__ = [
    "ConfigError", "ContextLengthExceeded", "Delta", "Engine", "EngineError", "EngineStats",
    "FinishReason", "GenerateRequest", "Generation", "InvalidRequest", "Message", "ModelLoadFailed",
    "ModelNotFound", "ModelsConfig", "ModelSpec", "Overloaded", "Registry", "SamplingParams",
    "Usage", "builtin_default", "load_models", "single_model", "assemble", "usage_of", "OutputKind", "ResponseFormat",
    "ToolCall", "ToolCallDelta", "ToolChoice", "ToolChoiceMode", "ToolSpec",
]
