"""Responses tools -> engine ToolSpecs. Function tools as they are; a custom (freeform) tool as a
function of one string, `input` (held to its regex where it gives one); a namespace's tools
flattened as `namespace.name`; tools this server cannot run (web search, image generation, shells,
MCP...) left out of the prompt with a log line, since agents send them on every request."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from engine import ToolChoice, ToolChoiceMode, ToolSpec

from ...errors import ApiError

log = logging.getLogger(__name__)

EMPTY = {"type": "object", "properties": {}}
MAX_NAME = 256


@dataclass
class ToolSet:
    specs: list[ToolSpec] = field(default_factory=list)
    custom: set[str] = field(default_factory=set)  # names of freeform tools: their calls carry raw input
    namespaced: set[str] = field(default_factory=set)  # "namespace.name" of the tools from namespaces
    echo: list[dict] = field(default_factory=list)  # the request's tools, for the response object

    def call_item_fields(self, name: str) -> dict:
        """What an output call item says of its tool: its name, and its namespace if it has one."""
        if name in self.namespaced:
            namespace, _, short = name.rpartition(".")
            return {"name": short, "namespace": namespace}
        return {"name": name}


def read_tools(tools: list[Any] | None, extra: list[Any], param: str = "tools") -> ToolSet:
    out = ToolSet(echo=list(tools or []))
    for i, tool in enumerate([*(tools or []), *extra]):
        where = f"{param}[{i}]" if i < len(tools or []) else "input.additional_tools"
        if not isinstance(tool, dict):
            raise ApiError(400, f"{where} must be an object", param=where)
        _add(out, tool, where, prefix="")
    names = [s.name for s in out.specs]
    if len(set(names)) != len(names):
        raise ApiError(400, "tool names must be unique", param=param)
    return out


def _add(out: ToolSet, tool: dict, where: str, prefix: str) -> None:
    kind = tool.get("type", "function")
    if not isinstance(kind, str):
        raise ApiError(400, f"{where}.type must be a string", param=f"{where}.type")
    if prefix and kind in ("function", "custom"):
        out.namespaced.add(prefix + _name(tool, where))
    if kind == "namespace" and not prefix:
        if not isinstance(tool.get("tools") or [], list):
            raise ApiError(400, f"{where}.tools must be a list", param=f"{where}.tools")
        for j, inner in enumerate(tool.get("tools") or []):
            if isinstance(inner, dict):
                _add(out, inner, f"{where}.tools[{j}]", prefix=f"{_name(tool, where)}.")
        return
    if kind == "function":
        params = tool.get("parameters") or EMPTY
        if not isinstance(params, dict):
            raise ApiError(400, f"{where}.parameters must be an object", param=f"{where}.parameters")
        out.specs.append(ToolSpec(prefix + _name(tool, where), str(tool.get("description") or ""), params,
                                  param=f"{where}.parameters"))
    elif kind == "custom":
        name = prefix + _name(tool, where)
        out.specs.append(ToolSpec(name, str(tool.get("description") or ""), _custom_schema(tool, where),
                                  param=f"{where}.format"))
        out.custom.add(name)
    else:
        log.info("leaving out a %r tool: it does not run on this server", kind)


def _name(tool: dict, where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise ApiError(400, f"{where}.name is required (1 to {MAX_NAME} characters)", param=f"{where}.name")
    return name


def _custom_schema(tool: dict, where: str) -> dict:
    """The one-string argument object of a custom tool. A regex format holds the string to it; a
    Lark grammar has no clean conversion here, so that input is free text."""
    text: dict = {"type": "string"}
    fmt = tool.get("format") or {"type": "text"}
    if not isinstance(fmt, dict):
        raise ApiError(400, f"{where}.format must be an object", param=f"{where}.format")
    if fmt.get("type") == "grammar":
        if fmt.get("syntax") == "regex" and isinstance(fmt.get("definition"), str):
            check_regex(fmt["definition"], f"{where}.format.definition")
            # The whole input is what the regex describes; a JSON Schema pattern only searches.
            text["pattern"] = f"^(?:{fmt['definition']})$"
        else:
            log.info("custom tool %r: a %s grammar is not enforced here; its input is free text",
                     tool.get("name"), fmt.get("syntax"))
    return {"type": "object", "properties": {"input": text}, "required": ["input"], "additionalProperties": False}


def check_regex(pattern: str, param: str) -> None:
    """The definition on its own: wrapped in ^(?:...)$, an unbalanced one such as `a)|(b` would
    turn into another, valid pattern."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ApiError(400, f"{param}: not a valid regular expression: {exc}", param=param) from None


def read_tool_choice(choice: str | dict | None, tools: ToolSet) -> ToolChoice:
    """auto / none / required / a named function or custom tool / allowed_tools (which narrows
    the tools to those it lists)."""
    if choice is None or choice == "auto":
        return ToolChoice()
    if isinstance(choice, str):
        if choice not in ("none", "required"):
            raise ApiError(400, f"tool_choice {choice!r} is not one of auto, none, required", param="tool_choice")
        return ToolChoice(ToolChoiceMode(choice))
    kind = choice.get("type")
    if not isinstance(kind, str):
        raise ApiError(400, "tool_choice.type must be a string", param="tool_choice.type")
    if kind in ("function", "custom"):
        name = choice.get("name")
        if choice.get("namespace"):
            name = f"{choice['namespace']}.{name}"
        return ToolChoice(ToolChoiceMode.FUNCTION, name)
    if kind == "allowed_tools":
        if not isinstance(choice.get("tools") or [], list):
            raise ApiError(400, "tool_choice.tools must be a list", param="tool_choice.tools")
        allowed = {t.get("name") for t in choice.get("tools") or [] if isinstance(t, dict)}
        tools.specs = [s for s in tools.specs if s.name in allowed or s.name.rpartition(".")[2] in allowed]
        return ToolChoice(ToolChoiceMode.REQUIRED if choice.get("mode") == "required" else ToolChoiceMode.AUTO)
    raise ApiError(400, f"tool_choice of type {kind!r} names a tool that does not run on this server",
                   param="tool_choice")
