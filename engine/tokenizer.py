"""A model's tokenizer and chat template, asked without generating: what /tokenize, /detokenize and
/apply-template serve. This is the server's side: it asks over the worker connection, so the server
process never loads a vocabulary; engine/queries.py answers in the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .messages import Detokenize, RenderPrompt, Tokenize
from .types import GenerateRequest

# Token ids one call lists (tokenize) or reads (detokenize): bounds the worker's work, what crosses
# the process boundary, and the JSON the server encodes. Counting alone has no such bound.
MAX_LISTED_TOKENS = 1 << 18


@dataclass(slots=True)
class Tokens:
    ids: list[int]
    pieces: list[bytes] | None = None  # each token's bytes (special tokens rendered), when asked for


class Tokenizer:
    """The client's face for a model's tokenizer; `ask(make)` sends `make(rid)` to the worker and
    waits for its Result."""

    def __init__(self, ask: Callable[[Callable[[int], Any]], Awaitable[Any]]):
        self._ask = ask

    async def tokenize(self, text_or_request: str | GenerateRequest, add_special: bool = False,
                       pieces: bool = False) -> Tokens:
        """Tokens of a text, or exactly the prompt tokens a request's messages make (then
        `add_special` is the engine's own choice, as for any prompt)."""
        if isinstance(text_or_request, str):
            return await self._ask(lambda rid: Tokenize(rid, None, text_or_request, add_special, pieces))
        return await self._ask(lambda rid: Tokenize(rid, text_or_request, None, add_special, pieces))

    async def detokenize(self, tokens: list[int]) -> str:
        """The text of these token ids (special tokens rendered; bytes that are not UTF-8 as U+FFFD)."""
        return await self._ask(lambda rid: Detokenize(rid, list(tokens)))

    async def render(self, request: GenerateRequest) -> str:
        """The prompt text the request's messages render to: what the engine then tokenizes."""
        return await self._ask(lambda rid: RenderPrompt(rid, request))
