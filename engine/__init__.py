"""ggserve's inference engine: continuous batching over llama.cpp, one worker process per model.
Knows nothing of HTTP."""

from .client import EngineClient, nesting_error
from .config import ModelsConfig, ModelSpec, Source, builtin_default, load_models, single_model
from .errors import (
    ConfigError,
    ContextLengthExceeded,
    EngineCrashed,
    EngineError,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    Overloaded,
)
from .generation import Generation, assemble, usage_of
from .launch import ProcessLauncher, ThreadLauncher
from .messages import ModelInfo
from .registry import Registry
from .sources import fetch_model_file, find_model_file, hub_gguf_files, hub_offline
from .tokenizer import MAX_LISTED_TOKENS, Tokens
from .types import (
    Delta,
    EngineStats,
    Failure,
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
    "ConfigError", "ContextLengthExceeded", "Delta", "EngineClient", "EngineCrashed", "EngineError", "EngineStats",
    "Failure", "FinishReason", "GenerateRequest", "Generation", "InvalidRequest", "Message", "ModelLoadFailed",
    "ModelNotFound", "ModelsConfig", "ModelSpec", "Overloaded", "ProcessLauncher", "Registry", "SamplingParams",
    "ThreadLauncher", "Usage", "builtin_default", "load_models", "single_model", "assemble", "usage_of", "OutputKind",
    "ResponseFormat", "ToolCall", "ToolCallDelta", "ToolChoice", "ToolChoiceMode", "ToolSpec",
    "MAX_LISTED_TOKENS", "ModelInfo", "Source", "Tokens", "fetch_model_file", "find_model_file", "hub_gguf_files",
    "hub_offline", "nesting_error",
]
