"""Prompt-lookup drafting for speculative decoding: no draft model, just the context itself.

Agents and code edits repeat long spans of their input. When the last few tokens of a sequence
occurred earlier in its prompt or output, the tokens that followed them then are a good guess for
what follows now; the engine feeds the guess with the next token in one decode and keeps the
longest prefix of it that sampling confirms (engine/core.py)."""

from __future__ import annotations

from array import array

MAX_NGRAM = 4  # the longest suffix looked up first
MIN_NGRAM = 2  # one token alone matches too much to be worth a guess
START_LENGTH = 2  # tokens guessed at first; it grows while guesses hold (Lookup.learn)


class Lookup:
    """A sequence's context (prompt and output) as 4-byte tokens, extended as it grows, so each
    search is one bytes.rfind in C instead of a Python scan."""

    __slots__ = ("_bytes", "_tokens", "length")

    def __init__(self) -> None:
        self._bytes = bytearray()
        self._tokens: list[int] = []
        self.length = START_LENGTH  # how many tokens to guess next

    def learn(self, offered: int, confirmed: int) -> None:
        """All guesses confirmed: the sequence is copying, guess twice as far. A refusal: guess
        no further than what held. On a CPU each guessed token costs about half a step (batched
        kernels are few), so long guesses only pay while they hold; on a GPU they cost little."""
        self.length = min(self.length * 2, 1024) if confirmed == offered else max(1, confirmed)

    def draft(self, prompt: list[int], generated: list[int], k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the context's (prompt
        then generated) last MAX_NGRAM..MIN_NGRAM tokens; [] when none occurred."""
        self._extend(prompt, generated)
        data, n_tokens = self._bytes, len(self._tokens)
        for n in range(min(MAX_NGRAM, n_tokens - 1), MIN_NGRAM - 1, -1):
            at = _rfind_aligned(data, bytes(data[-4 * n:]), len(data) - 4)
            if at >= 0:
                start = at // 4 + n
                return self._tokens[start:start + k]
        return []

    def _extend(self, prompt: list[int], generated: list[int]) -> None:
        have = len(self._tokens)
        new = prompt[have:] + generated[max(0, have - len(prompt)):]
        if new:
            self._tokens += new
            self._bytes += array("i", new).tobytes()


def _rfind_aligned(data: bytearray, pattern: bytes, end: int) -> int:
    """The last token-aligned occurrence of `pattern` ending at or before byte `end`; -1 if none."""
    at = data.rfind(pattern, 0, end)
    while at > 0 and at % 4:
        at = data.rfind(pattern, 0, at + len(pattern) - 1)
    return at
