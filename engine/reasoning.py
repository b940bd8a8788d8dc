"""Splits a reasoning model's thinking (between its think tags) from its answer, as it streams."""

from __future__ import annotations

from .toolparser import partial_tag

OPEN, CLOSE = "<think>", "</think>"


class ReasoningParser:
    """Text before the first `</think>` is reasoning when the output starts with `<think>` or the
    prompt already opened the block; everything after it is the answer."""

    def __init__(self, in_think: bool):
        self.in_think = in_think
        self._opening = not in_think  # may the output still open a block?
        self._closed = False  # the block just closed: whitespace before the answer is dropped
        self._buf = ""

    def push(self, text: str) -> tuple[str, str]:
        """(reasoning, content) that may be sent now."""
        self._buf += text
        reasoning = content = ""
        if self._opening:
            stripped = self._buf.lstrip()
            if stripped.startswith(OPEN):
                self._buf, self.in_think, self._opening = stripped[len(OPEN):], True, False
            elif not OPEN.startswith(stripped):  # it is the answer; no block is coming
                self._opening = False
            else:
                return "", ""
        if self.in_think:
            at = self._buf.find(CLOSE)
            if at < 0:
                keep = partial_tag(self._buf, CLOSE)
                reasoning, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep:]
                return reasoning, ""
            reasoning, self._buf, self.in_think = self._buf[:at], self._buf[at + len(CLOSE):], False
            self._closed = True
        if self._closed:
            self._buf = self._buf.lstrip()
            self._closed = not self._buf
        content, self._buf = self._buf, ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        rest, self._buf = self._buf, ""
        return (rest, "") if self.in_think else ("", rest)
