"""Engine Deltas -> Responses output items, in the order they appear, with the typed events that
open, grow and close each one. Streaming sends the events; a plain response keeps the items."""

from __future__ import annotations

import json
import re

from engine import Delta

from ...jsonbody import SURROGATE
from .items import ID_PREFIX, new_id
from .tools import ToolSet

Event = dict  # {"type": ..., fields}: the renderer adds sequence numbers


# A JSON string escape: a surrogate pair, one \\uXXXX, or a backslash and one character.
ESCAPE = re.compile(r'\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[^u])')
HIGH = re.compile(r'\\u[dD][89abAB][0-9a-fA-F]{2}')
LOW_SO_FAR = re.compile(r'(?:\\(?:u(?:[dD](?:[c-fC-F][0-9a-fA-F]{0,2})?)?)?)?')


class InputField:
    """Decodes the string value of `{"input": "..."}` (a custom tool's arguments, as the model
    writes them) while its JSON text arrives in pieces; an escape cut between pieces waits. The
    grammar lets a model write a lone surrogate escape: it reads as U+FFFD (it could not be sent)."""

    HEAD = re.compile(r'\s*\{\s*"input"\s*:\s*"')

    def __init__(self) -> None:
        self._raw = ""
        self._pos: int | None = None
        self.closed = False
        self.text = ""

    def push(self, piece: str) -> str:
        self._raw += piece
        if self._pos is None:
            head = self.HEAD.match(self._raw)
            if head is None:
                return ""
            self._pos = head.end()
        out = []
        while self._pos < len(self._raw) and not self.closed:
            ch = self._raw[self._pos]
            if ch == "\\":
                escape = self._escape()
                if escape is None:
                    break  # the rest of it comes with the next piece
                text, length = escape
                out.append(text)
                self._pos += length
                continue
            self._pos += 1
            if ch == '"':
                self.closed = True
            else:
                out.append(ch)
        new = "".join(out)
        self.text += new
        return new

    def _escape(self) -> tuple[str, int] | None:
        """The escape at the current position, decoded, and its length; None until it is whole."""
        rest = self._raw[self._pos:]
        high = HIGH.match(rest)
        if high and len(rest) < 12 and LOW_SO_FAR.fullmatch(rest[6:]):
            return None  # perhaps the first half of a pair
        found = ESCAPE.match(rest)
        if found is None:
            return None if len(rest) < 6 else ("\ufffd", 2)
        return SURROGATE.sub("\ufffd", json.loads(f'"{found.group()}"')), found.end()


class OutputItems:
    """The output items of one generation; push() and close() return the events they cause."""

    def __init__(self, tools: ToolSet, summary: bool = False, logprobs: bool = False):
        self.items: list[dict] = []
        self._tools = tools
        self._summary = summary  # reasoning.summary was asked for
        self._logprobs = logprobs
        self._open: dict | None = None
        self._input: InputField | None = None  # the open custom tool call's input
        self._raw_arguments = ""  # the open call's arguments as the model wrote them

    @property
    def _index(self) -> int:
        return len(self.items) - 1

    def push(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning:
            events += self._ensure("reasoning") + self._grow_reasoning(delta.reasoning)
        if delta.text or delta.logprobs:
            events += self._ensure("message") + self._grow_text(delta)
        part = delta.tool_call
        if part is not None:
            if part.name is not None:
                events += self.close() + self._open_call(part.id or "", part.name)
            if part.arguments and self._open is not None:
                events += self._grow_call(part.arguments)
        return events

    def _ensure(self, kind: str) -> list[Event]:
        if self._open is not None and self._open["type"] == kind:
            return []
        events = self.close()
        self._open = {"type": kind, "id": _item_id(kind), "status": "in_progress"}
        if kind == "message":
            self._open.update(role="assistant", content=[])
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            self._open.update(summary=[], content=[], encrypted_content=None)
            part = {"type": "reasoning_text", "text": ""}
        self.items.append(self._open)
        added = {"type": "response.output_item.added", "output_index": self._index, "item": _copy(self._open)}
        self._open["content"].append(part)
        return events + [added, {**self._at(), "type": "response.content_part.added", "part": dict(part)}]

    def _at(self, content: bool = True) -> dict:
        at = {"item_id": self._open["id"], "output_index": self._index}
        return {**at, "content_index": 0} if content else at

    def _grow_text(self, delta: Delta) -> list[Event]:
        part = self._open["content"][0]
        part["text"] += delta.text
        logprobs = [_logprob(e) for e in delta.logprobs or []] if self._logprobs else []
        part["logprobs"] += logprobs
        return [{**self._at(), "type": "response.output_text.delta", "delta": delta.text, "logprobs": logprobs}]

    def _grow_reasoning(self, text: str) -> list[Event]:
        self._open["content"][0]["text"] += text
        return [{**self._at(), "type": "response.reasoning_text.delta", "delta": text}]

    def _open_call(self, engine_id: str, name: str) -> list[Event]:
        custom = name in self._tools.custom
        kind = "custom_tool_call" if custom else "function_call"
        self._open = {"type": kind, "id": _item_id(kind, engine_id), "call_id": f"call_{engine_id}",
                      **self._tools.call_item_fields(name), "status": "in_progress",
                      **({"input": ""} if custom else {"arguments": ""})}
        self._input = InputField() if custom else None
        self._raw_arguments = ""
        self.items.append(self._open)
        return [{"type": "response.output_item.added", "output_index": self._index, "item": dict(self._open)}]

    def _grow_call(self, fragment: str) -> list[Event]:
        self._raw_arguments += fragment
        if self._input is None:
            self._open["arguments"] += fragment
            return [{**self._at(False), "type": "response.function_call_arguments.delta", "delta": fragment}]
        text = self._input.push(fragment)
        self._open["input"] += text
        return [{**self._at(False), "type": "response.custom_tool_call_input.delta", "delta": text}] if text else []

    def close(self, status: str = "completed") -> list[Event]:
        """Finish the open item (status `incomplete` when the generation was cut off)."""
        item = self._open
        if item is None:
            return []
        kind, events = item["type"], []
        if kind == "message":
            part = item["content"][0]
            events += [{**self._at(), "type": "response.output_text.done", "text": part["text"],
                        "logprobs": part["logprobs"]},
                       {**self._at(), "type": "response.content_part.done", "part": dict(part)}]
        elif kind == "reasoning":
            events += self._close_reasoning(item)
        elif kind == "function_call":
            events.append({**self._at(False), "type": "response.function_call_arguments.done",
                           "arguments": item["arguments"]})
        else:
            item["input"] = _full_input(self._raw_arguments, self._input)
            events.append({**self._at(False), "type": "response.custom_tool_call_input.done", "input": item["input"]})
        item["status"] = status
        events.append({"type": "response.output_item.done", "output_index": self._index, "item": _copy(item)})
        self._open = None
        return events

    def _close_reasoning(self, item: dict) -> list[Event]:
        text = item["content"][0]["text"]
        events = [{**self._at(), "type": "response.reasoning_text.done", "text": text},
                  {**self._at(), "type": "response.content_part.done", "part": dict(item["content"][0])}]
        if not self._summary:
            return events
        # A local model writes no separate summary: its reasoning is its own summary.
        part = {"type": "summary_text", "text": text}
        at = {**self._at(False), "summary_index": 0}
        item["summary"] = [part]
        return events + [{**at, "type": "response.reasoning_summary_part.added", "part": {**part, "text": ""}},
                         {**at, "type": "response.reasoning_summary_text.delta", "delta": text},
                         {**at, "type": "response.reasoning_summary_text.done", "text": text},
                         {**at, "type": "response.reasoning_summary_part.done", "part": dict(part)}]


def _full_input(arguments: str, field: InputField | None) -> str:
    try:
        return SURROGATE.sub("\ufffd", str(json.loads(arguments)["input"]))
    except (json.JSONDecodeError, KeyError, TypeError):
        return field.text if field is not None else ""  # cut off by max_output_tokens: what there is


def _item_id(kind: str, engine_id: str = "") -> str:
    return f"{ID_PREFIX[kind]}_{engine_id}" if engine_id else new_id(kind)


def _copy(item: dict) -> dict:
    return json.loads(json.dumps(item))


def _logprob(entry) -> dict:
    return {"token": entry.token, "bytes": list(entry.bytes), "logprob": entry.logprob,
            "top_logprobs": [{"token": t.token, "bytes": list(t.bytes), "logprob": t.logprob} for t in entry.top]}
