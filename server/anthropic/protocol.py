"""Pydantic models of the Anthropic Messages request (validation only; responses are dicts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Block(BaseModel):
    """A content block; which fields matter depends on `type` (checked in convert)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str | None = None


class Thinking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1)
    display: Literal["summarized", "omitted"] | None = None  # "omitted": thinking blocks come back empty


class OutputFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # "system": a mid-conversation system message (Claude Code's mid-conversation-system beta).
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]
    # System messages only: dropped once a later user message arrives, as the beta defines; and
    # a change of effort from here on (inert here, like the top-level effort).
    clear_at: Literal["next_user_message"] | None = None
    output_config: OutputConfig | None = None


class ToolIn(BaseModel):
    # Also accepted: cache_control, strict (calls are always held to the schema here),
    # eager_input_streaming (arguments always stream), input_examples.
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str = ""
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # "custom" or absent; server tools (web search, bash...) are refused
    # Tool search (advanced-tool-use beta): left out of the prompt until a tool_reference loads it.
    defer_loading: bool = False


class ContextManagement(BaseModel):
    """The context-management beta's edits (clear old thinking or tool results past a threshold).
    Accepted; earlier thinking is never part of the prompt here, and nothing else is cleared."""

    model_config = ConfigDict(extra="forbid")
    edits: list[dict[str, Any]] = Field(default_factory=list)


class ToolChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class CountTokensRequest(BaseModel):
    # Like the real API, unknown fields are refused by name rather than silently ignored.
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[Block] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = None  # the prompt cache is always on here
    context_management: ContextManagement | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    stream: bool = False
    container: Any = None  # refused when set: there are no code-execution containers here
    # Accepted and inert on a local server: one tier, one speed, one region, no workspaces.
    service_tier: str | None = None
    speed: str | None = None
    inference_geo: str | None = None
    diagnostics: dict[str, Any] | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
