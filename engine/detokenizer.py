"""Incremental, UTF-8-safe text from generated token pieces."""

from __future__ import annotations

import codecs


class Detokenizer:
    """Turns token byte pieces into text; a character split across tokens is held until whole."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, piece: bytes) -> str:
        return self._decoder.decode(piece)

    def flush(self) -> str:
        """Whatever is still held; an incomplete character at the very end becomes U+FFFD."""
        return self._decoder.decode(b"", final=True)
