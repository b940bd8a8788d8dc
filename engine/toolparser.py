"""Splits generated text into content and tool calls as it streams.

Two native call formats are understood: Hermes/Qwen `<tool_call>{"name": ..., "arguments": {...}}
</tool_call>` (also ggserve's generic format for models whose template has no tools), and the
Llama-3 JSON style `{"name": ..., "parameters": {...}}` as the whole reply. Argument text is
passed on as it arrives, so a stream shows a call's name first and then its arguments.
"""

from __future__ import annotations

import enum
import json
import re
import uuid

from .types import Delta, ToolCallDelta


class ToolFormat(enum.Enum):
    HERMES = "hermes"
    LLAMA3 = "llama3"


OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"\s*:\s*')
_TAIL = {ToolFormat.HERMES: re.compile(r"\s*\}\s*</tool_call>"), ToolFormat.LLAMA3: re.compile(r"\s*\}")}
_HEAD_GIVE_UP = 512  # characters after an opening without a recognisable head: it was text


class _State(enum.Enum):
    TEXT = 0
    HEAD = 1  # inside a call, before its arguments
    ARGS = 2
    TAIL = 3  # arguments done, the call's closing still to come


def new_call_id() -> str:
    return uuid.uuid4().hex[:24]


class ToolCallParser:
    def __init__(self, fmt: ToolFormat):
        self.fmt = fmt
        self.calls = 0
        self._state = _State.TEXT
        self._buf = ""
        self._emitted_text = False
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def push(self, text: str) -> list[Delta]:
        self._buf += text
        out: list[Delta] = []
        while True:
            before = (self._state, len(self._buf))
            step = {_State.TEXT: self._text, _State.HEAD: self._head,
                    _State.ARGS: self._args, _State.TAIL: self._tail}[self._state]
            out += step()
            if (self._state, len(self._buf)) == before:
                return out

    def finish(self) -> list[Delta]:
        """End of generation: held text is content; an unfinished call stays as it got."""
        rest, self._buf = self._buf, ""
        if self._state is _State.TEXT and self.calls and OPEN_TAG.startswith(rest.strip()):
            return []  # the start of one more call, cut off
        if self._state is _State.TEXT or (self._state is _State.HEAD and not self.calls and self.fmt is ToolFormat.LLAMA3):
            return self._content(rest)
        return []

    def _content(self, text: str) -> list[Delta]:
        if not text or (self.calls and not text.strip()):  # whitespace between/after calls is not content
            return []
        self._emitted_text = True
        return [Delta(text=text)]

    def _text(self) -> list[Delta]:
        buf = self._buf
        if self.fmt is ToolFormat.LLAMA3:
            # A JSON call is the whole reply: only recognised before any content.
            if self._emitted_text:
                self._buf = ""
                return self._content(buf)
            stripped = buf.lstrip()
            if not stripped:
                return []
            if stripped.startswith("{"):
                self._buf, self._state = stripped, _State.HEAD
                return []
            self._buf = ""
            return self._content(buf)
        at = buf.find(OPEN_TAG)
        if at >= 0:
            self._buf, self._state = buf[at + len(OPEN_TAG):], _State.HEAD
            return self._content(buf[:at])
        keep = partial_tag(buf, OPEN_TAG)
        self._buf = buf[len(buf) - keep:] if keep else ""
        return self._content(buf[: len(buf) - keep])

    def _head(self) -> list[Delta]:
        m = _HEAD.match(self._buf)
        if m is None:
            if len(self._buf) > _HEAD_GIVE_UP:  # not a call after all
                text, self._buf, self._state = self._buf, "", _State.TEXT
                return self._content((OPEN_TAG if self.fmt is ToolFormat.HERMES else "") + text)
            return []
        name = json.loads(f'"{m.group(1)}"')
        self._buf, self._state = self._buf[m.end():], _State.ARGS
        self._depth, self._in_string, self._escaped = 0, False, False
        delta = Delta(tool_call=ToolCallDelta(index=self.calls, id=new_call_id(), name=name))
        self.calls += 1
        return [delta]

    def _args(self) -> list[Delta]:
        """Pass argument text on up to the end of its JSON value."""
        buf = self._buf if self._depth else self._buf.lstrip()  # no whitespace before the value
        end = None
        for i, ch in enumerate(buf):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    end = i + 1
                    break
        if end is None:
            piece, self._buf = buf, ""
        else:
            piece, self._buf, self._state = buf[:end], buf[end:], _State.TAIL
        return [Delta(tool_call=ToolCallDelta(index=self.calls - 1, arguments=piece))] if piece else []

    def _tail(self) -> list[Delta]:
        m = _TAIL[self.fmt].match(self._buf)
        if m is not None:
            self._buf, self._state = self._buf[m.end():], _State.TEXT
        return []


def partial_tag(buf: str, tag: str) -> int:
    """Length of the longest suffix of buf that is a proper prefix of tag."""
    for n in range(min(len(tag) - 1, len(buf)), 0, -1):
        if buf.endswith(tag[:n]):
            return n
    return 0
