"""One running request: its tokens, position in the KV cache, sampler and stop state."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .detokenizer import Detokenizer
from .lookup import Lookup
from .reasoning import OPEN as OPEN_THINK
from .reasoning import ReasoningParser
from .stopping import StopMatcher
from .toolparser import ToolCallParser
from .types import Delta, FinishReason, SamplingParams, TokenLogprob, TopLogprob


class SeqState(enum.Enum):
    WAITING = "waiting"  # queued, no slot yet
    FOLLOW = "follow"  # has a slot; gets its leader's prompt cells once the leader has them
    PREFILL = "prefill"  # has a slot, prompt not fully in the KV cache
    DECODE = "decode"  # generating one token per step
    DONE = "done"


@dataclass(slots=True, eq=False)
class Sequence:
    id: int
    prompt: list[int]
    max_tokens: int  # already capped so prompt + completion fits the sequence's context
    sampling: SamplingParams
    stop: StopMatcher
    rid: int = 0  # the caller's request id: Deltas go back under it
    state: SeqState = SeqState.WAITING
    slot: int = -1  # llama.cpp sequence id while it holds one
    n_past: int = 0  # tokens of this sequence already in the KV cache
    next_token: int = -1  # sampled, to be fed at the next decode
    n_generated: int = 0
    n_cached: int = 0  # prompt tokens found already in the slot's KV cells
    generated: list[int] = field(default_factory=list)  # sampled tokens that get fed back
    sampler: Any = None
    detok: Detokenizer = field(default_factory=Detokenizer)
    grammar: Any = None  # tools.Grammar for constrained output, else None
    parser: ToolCallParser | None = None  # splits tool calls out of the text when tools are on
    logprobs: int | None = None  # top alternatives per token when logprobs are asked for
    lp_pending: list[TokenLogprob] = field(default_factory=list)  # entries whose text is not sent yet
    lp_sent: int = 0  # characters of lp_pending[0]'s text already sent
    choice: int = 0
    thinker: ReasoningParser | None = None  # set for reasoning models
    n_reasoning: int = 0  # generated tokens that were thinking
    followers: list[Sequence] = field(default_factory=list)  # choices 1..n-1, sharing this prompt
    lookup: Lookup | None = None  # drafts guesses from the context when speculation is on
    draft: list[int] = field(default_factory=list)  # this step's guesses, fed after next_token

    @property
    def prompt_left(self) -> int:
        return len(self.prompt) - self.n_past

    def accept(self, token: int, piece: bytes, eog: bool,
               logprob: tuple[float, list[TopLogprob]] | None = None) -> tuple[list[Delta], FinishReason | None]:
        """Take one sampled token: the Deltas that may be sent now, and why it ends if it does."""
        self.n_generated += 1
        if eog:
            return self._render(self._drain(), True), self._final_reason(FinishReason.STOP)
        decoded = self.detok.push(piece)
        if logprob is not None:
            self.lp_pending.append(TokenLogprob(decoded, piece, logprob[0], logprob[1]))
        if self.thinker is not None and (self.thinker.in_think or OPEN_THINK in decoded):
            self.n_reasoning += 1
        text = self.stop.push(decoded)
        if self.stop.matched is not None:
            return self._render(text, True), self._final_reason(FinishReason.STOP)
        if self.n_generated >= self.max_tokens:
            text += self._drain()
            reason = FinishReason.STOP if self.stop.matched is not None else FinishReason.LENGTH
            return self._render(text, True), self._final_reason(reason)
        self.next_token = token
        self.generated.append(token)
        return self._render(text, False), None

    def _render(self, text: str, final: bool) -> list[Delta]:
        """Deltas for newly released text: thinking apart, tool calls parsed out of the answer."""
        if self.thinker is None:
            return self._render_answer(text, final)
        reasoning, answer = self.thinker.push(text) if text else ("", "")
        if final:
            more_reasoning, more_answer = self.thinker.finish()
            reasoning, answer = reasoning + more_reasoning, answer + more_answer
        deltas = [Delta(reasoning=reasoning, choice=self.choice)] if reasoning else []
        return deltas + self._render_answer(answer, final)

    def _render_answer(self, text: str, final: bool) -> list[Delta]:
        if self.parser is None:
            if self.logprobs is None:
                return [Delta(text=text, choice=self.choice)] if text else []
            entries = self._release_logprobs(len(text), final)
            return [Delta(text=text, logprobs=entries, choice=self.choice)] if text or entries else []
        deltas = self.parser.push(text) if text else []
        deltas = deltas + self.parser.finish() if final else deltas
        for delta in deltas:
            delta.choice = self.choice
        return deltas

    def _release_logprobs(self, n_chars: int, final: bool) -> list[TokenLogprob]:
        """The entries whose text the last `n_chars` sent characters complete. At the end, a
        token cut by a stop string keeps only the part of its text that was sent."""
        out: list[TokenLogprob] = []
        while self.lp_pending:
            head = self.lp_pending[0]
            left = len(head.token) - self.lp_sent
            if left <= n_chars:
                n_chars -= left
                out.append(self.lp_pending.pop(0))
                self.lp_sent = 0
                continue
            self.lp_sent += n_chars
            if final and self.lp_sent:
                out.append(TokenLogprob(head.token[: self.lp_sent], head.bytes, head.logprob, head.top))
            break
        if final:
            self.lp_pending.clear()
        return out

    def _final_reason(self, reason: FinishReason) -> FinishReason:
        if reason is FinishReason.STOP and self.parser is not None and self.parser.calls:
            return FinishReason.TOOL_CALLS
        return reason

    def kv_tokens(self) -> list[int]:
        """The tokens whose KV cells this sequence's slot holds, in position order."""
        return (self.prompt + self.generated)[: self.n_past]

    def _drain(self) -> str:
        """Text still held by the detokenizer and the stop matcher once generation ends."""
        text = self.stop.push(self.detok.flush())
        if self.stop.matched is None:
            text += self.stop.flush()
        return text
