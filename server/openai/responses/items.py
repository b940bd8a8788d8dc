"""Responses input items -> engine Messages, and the items as the store keeps them (each with an
id, minted where the client sent none, for GET .../input_items)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from engine import Message, ToolCall

from ...errors import ApiError

log = logging.getLogger(__name__)

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = {"input_text", "output_text", "text", "summary_text", "reasoning_text"}
MEDIA_PARTS = {"input_image", "input_file", "input_audio"}
ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "custom_tool_call": "ctc",
             "custom_tool_call_output": "ctco", "reasoning": "rs"}
# Items of tools this server cannot run (web search, shells...): they can only come back from a
# client's own history, and carry nothing the model could read again.
SKIPPED = {"web_search_call", "file_search_call", "computer_call", "computer_call_output", "image_generation_call",
           "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
           "apply_patch_call", "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request",
           "mcp_approval_response", "mcp_call", "compaction", "compaction_trigger", "configuration_update",
           "tool_search_call", "tool_search_output", "program", "program_output"}


def new_id(kind: str) -> str:
    return f"{ID_PREFIX.get(kind, 'item')}_{uuid.uuid4().hex[:24]}"


def custom_arguments(text: str) -> str:
    """A custom (freeform) tool's input, as the arguments of the one-string function the model
    is shown for it."""
    return json.dumps({"input": text}, ensure_ascii=False)


@dataclass
class Conversation:
    messages: list[Message] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)  # as stored, with ids
    extra_tools: list[dict] = field(default_factory=list)  # from `additional_tools` items


class InputReader:
    """Reads one request's `input`. Function calls that follow an assistant turn join it; a
    reasoning item's text goes with the assistant turn after it."""

    def __init__(self, lookup: Callable[[str], dict | None], names: dict[str, str] | None = None):
        self._lookup = lookup  # item id -> a stored item, for item_reference
        self._reasoning = ""
        # call_id -> tool name, for the tool turns that answer (calls of earlier responses too)
        self._names: dict[str, str] = dict(names or {})
        self.out = Conversation()

    def read(self, value: str | list[Any]) -> Conversation:
        if isinstance(value, str):
            value = [{"type": "message", "role": "user", "content": value}]
        for i, item in enumerate(value):
            where = f"input[{i}]"
            if not isinstance(item, dict):
                raise ApiError(400, f"{where} must be an object", param=where)
            if item.get("type") == "item_reference":
                item = self._resolve(where, item)
            self._item(where, item)
        return self.out

    def _resolve(self, where: str, ref: dict) -> dict:
        if not isinstance(ref.get("id"), str) or not ref["id"]:
            raise ApiError(400, f"{where}.id must be the id of a stored item", param=f"{where}.id")
        found = self._lookup(ref["id"])
        if found is None:
            raise ApiError(404, f"Item with id '{ref.get('id')}' not found.", param=f"{where}.id")
        return found

    def _item(self, where: str, item: dict) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind is not None and not isinstance(kind, str):
            raise ApiError(400, f"{where}.type must be a string", param=f"{where}.type")
        handler = {"message": self._message, "function_call": self._call, "custom_tool_call": self._call,
                   "function_call_output": self._output, "custom_tool_call_output": self._output,
                   "reasoning": self._reasoning_item, "additional_tools": self._tools}.get(kind)
        if handler is None:
            if kind in SKIPPED:
                log.debug("skipping a %s item: its tool does not run here", kind)
                return
            raise ApiError(400, f"{where}: unknown input item type {kind!r}", param=f"{where}.type")
        handler(where, item)
        if kind != "additional_tools":
            self.out.items.append(stored_item(item, kind))

    def _message(self, where: str, item: dict) -> None:
        role = ROLES.get(item.get("role"))
        if role is None:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role")
        text = content_text(where, item.get("content"))
        if role == "assistant":
            self.out.messages.append(Message("assistant", text, reasoning=self._take_reasoning()))
        else:
            self.out.messages.append(Message(role, text))

    def _call(self, where: str, item: dict) -> None:
        call_id, name = required(where, item, "call_id"), required(where, item, "name")
        if item.get("namespace"):
            name = f"{required(where, item, 'namespace')}.{name}"
        if item.get("type") == "custom_tool_call":
            arguments = custom_arguments(str(item.get("input", "")))
        else:
            arguments = item.get("arguments") or "{}"
            if not isinstance(arguments, str):
                raise ApiError(400, f"{where}.arguments must be a JSON string", param=f"{where}.arguments")
        self._names[call_id] = name
        last = self.out.messages[-1] if self.out.messages else None
        if last is None or last.role != "assistant" or self._reasoning:
            last = Message("assistant", "", reasoning=self._take_reasoning())
            self.out.messages.append(last)
        last.tool_calls.append(ToolCall(call_id, name, arguments))

    def _output(self, where: str, item: dict) -> None:
        call_id = required(where, item, "call_id")
        text = content_text(where, item.get("output", ""), "output")
        self.out.messages.append(Message("tool", text, tool_call_id=call_id, name=self._names.get(call_id)))

    def _reasoning_item(self, where: str, item: dict) -> None:
        parts = item.get("content") or item.get("summary") or []
        if not isinstance(parts, list):
            field = "content" if item.get("content") else "summary"
            raise ApiError(400, f"{where}.{field} must be a list of parts", param=f"{where}.{field}")
        self._reasoning += "".join(p.get("text", "") for p in parts if isinstance(p, dict))

    def _tools(self, where: str, item: dict) -> None:
        tools = item.get("tools")
        if not isinstance(tools, list):
            raise ApiError(400, f"{where}.tools must be a list", param=f"{where}.tools")
        self.out.extra_tools += tools

    def _take_reasoning(self) -> str:
        text, self._reasoning = self._reasoning, ""
        return text


def stored_item(item: dict, kind: str) -> dict:
    """The item as GET .../input_items lists it: with its type, an id, and a message's content
    as parts."""
    out = {**item, "type": kind, "id": item.get("id") or new_id(kind)}
    if kind == "message":
        out.setdefault("status", "completed")
        if isinstance(out.get("content"), str):
            part = "output_text" if out.get("role") == "assistant" else "input_text"
            out["content"] = [{"type": part, "text": out["content"]}]
    return out


def required(where: str, item: dict, name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{where}.{name} is required (a non-empty string)", param=f"{where}.{name}")
    return value


def content_text(where: str, content: Any, name: str = "content") -> str:
    """A message's (or a tool output's) text: a string, or text parts joined by newlines."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.{name} must be a string or a list of parts", param=f"{where}.{name}")
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.{name}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind in MEDIA_PARTS:
            raise ApiError(400, f"{at}: '{kind}' parts are not supported by this text-only model", param=at)
        else:
            raise ApiError(400, f"{at}: unknown content part type {kind!r}", param=at)
    return "\n".join(texts)
