"""A request becomes sequences: every check, the chat template, tokenization and the output grammar,
before anything is queued. Runs in the worker, beside (not inside) the step loop."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from .chat_template import ChatTemplate
from .config import ModelSpec
from .errors import ContextLengthExceeded, InvalidRequest
from .lookup import Lookup
from .reasoning import OPEN as OPEN_THINK
from .reasoning import ReasoningParser
from .sequence import Sequence
from .stopping import StopMatcher
from .toolparser import ToolCallParser
from .tools import Grammar, Tooling
from .types import GenerateRequest

MAX_TOP_LOGPROBS = 20


class Preparer:
    def __init__(self, spec: ModelSpec, backend: Any, template: ChatTemplate, adds_bos: bool = False):
        self.spec = spec
        self.backend = backend
        self.template = template
        self.tooling = Tooling.for_template(template.source)
        self.reasons = OPEN_THINK in template.source  # a reasoning model: split its thinking out
        self._adds_bos = adds_bos
        self._ids = itertools.count(1)

    def render(self, request: GenerateRequest) -> str:
        if request.prompt is not None:
            return request.prompt
        messages, tools = self.tooling.prepare(request)
        return self.template.render(messages, tools, request.thinking)

    def tokenize(self, request: GenerateRequest, text: str | None = None) -> list[int]:
        """The prompt's tokens, never empty: an empty prompt is its BOS token alone, or a 400 for a
        vocabulary without one (llama.cpp cannot start from nothing)."""
        text = self.render(request) if text is None else text
        param = "prompt" if request.prompt is not None else "messages"
        check_text(text, param)
        tokens = self.encode(text, add_special=True)
        if not tokens:
            if self.backend.bos < 0:
                raise InvalidRequest(f"{param} must not be empty", param=param)
            tokens = [self.backend.bos]
        return tokens

    def encode(self, text: str, add_special: bool) -> list[int]:
        """llama.cpp's tokens for `text`; add_special: the model's BOS, as prompts get it (never a
        second one after a template that writes its own)."""
        bos_text = self.template.bos_token
        add_bos = add_special and self._adds_bos and not (bos_text and text.startswith(bos_text))
        return self.backend.tokenize(text, add_bos)

    def count(self, request: GenerateRequest) -> int:
        return len(self.tokenize(request))

    def prepare(self, rid: int, request: GenerateRequest) -> list[Sequence]:
        """The request's sequences (one per choice), checked to fit and to compile."""
        self._check_limits(request)
        grammar = self.tooling.grammar(request)
        if grammar is not None:
            check_text(grammar.gbnf, "response_format" if request.response_format.schema else "tools")
            self.backend.check_grammar(grammar)
        text = self.render(request)
        prompt = self.tokenize(request, text)
        if len(prompt) >= self.spec.n_ctx:
            raise ContextLengthExceeded(len(prompt), self.spec.n_ctx, request.max_tokens)
        room = self.spec.n_ctx - len(prompt)
        max_tokens = min(request.max_tokens or self.spec.max_tokens or room, room)
        in_think = text.rstrip().endswith(OPEN_THINK)
        return [self._sequence(rid, request, prompt, grammar, max_tokens, i, in_think) for i in range(request.n)]

    def _check_limits(self, request: GenerateRequest) -> None:
        if request.max_tokens is not None and request.max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        if request.logprobs is not None and not 0 <= request.logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
        n_vocab = self.backend.n_vocab
        bad = [t for t in request.sampling.logit_bias if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequest(f"logit_bias: token id {bad[0]} is outside the vocabulary (0..{n_vocab - 1})",
                                 param="logit_bias")
        if not 1 <= request.n <= self.backend.n_seq:
            raise InvalidRequest(f"n must be between 1 and {self.backend.n_seq} for this model", param="n")
        for stop in request.stop:
            check_text(stop, "stop")

    def _sequence(self, rid: int, request: GenerateRequest, prompt: list[int], grammar: Grammar | None,
                  max_tokens: int, choice: int, in_think: bool) -> Sequence:
        sampling = request.sampling
        if choice and sampling.seed is not None:  # choice i of a seeded request is reproducible
            sampling = dataclasses.replace(sampling, seed=sampling.seed + choice)
        return Sequence(
            id=next(self._ids),
            rid=rid,
            prompt=prompt,
            max_tokens=max_tokens,
            sampling=sampling,
            stop=StopMatcher(request.stop, quiet=self.spec.stop),
            grammar=grammar,
            parser=ToolCallParser(self.tooling.fmt) if self.tooling.uses_tools(request) else None,
            logprobs=request.logprobs,
            choice=choice,
            thinker=ReasoningParser(in_think) if self.reasons and request.prompt is None else None,
            # Any sampling: each confirmed guess is the token sampling chose from its own row.
            lookup=Lookup() if self.spec.lookup_draft and not self.spec.deterministic else None,
        )


def check_text(text: str, param: str) -> None:
    """Text must be valid Unicode before it reaches the tokenizer or a grammar: a lone surrogate
    (JSON allows "\\ud800") cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"{param} holds an unpaired surrogate (U+{ord(exc.object[exc.start]):04X}), which is "
                             "not valid Unicode text", param=param) from exc
