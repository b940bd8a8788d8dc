"""The step: one llama_decode for every running sequence, then one sampled token for each."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .scheduler import Scheduler, StepPlan
from .sequence import Sequence, SeqState
from .types import Failure, FinishReason, TopLogprob

log = logging.getLogger(__name__)

NOTHING_ALLOWED = Failure("invalid_request", "no token may be generated: logit_bias bans every token that the "
                                             "output format (tools or response_format) allows", param="logit_bias")


class SamplerLike(Protocol):
    def sample(self, row: int) -> int | None: ...  # None: no token is allowed at all
    def free(self) -> None: ...


class BackendLike(Protocol):
    """What the engine needs from backend.Backend; unit tests supply a fake (tests/fake_backend.py)."""

    n_seq: int
    n_batch: int
    n_vocab: int
    bos: int  # -1 when the vocabulary has none

    def tokenize(self, text: str, add_special: bool) -> list[int]: ...
    def decode(self, tokens: list[int], positions: list[int], seq_ids: list[int], outputs: list[int]) -> int: ...
    def new_sampler(self, params: Any, grammar: Any = None) -> SamplerLike: ...
    def check_grammar(self, grammar: Any) -> None: ...
    def piece(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def logprobs(self, row: int, token: int, top_n: int) -> tuple[float, list[tuple[int, float]]]: ...
    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool: ...
    def copy_prefix(self, src: int, dst: int, n: int) -> None: ...
    def close(self) -> None: ...


class EngineCore:
    """Runs steps over the scheduler's sequences; knows neither threads nor processes."""

    def __init__(self, backend: BackendLike, scheduler: Scheduler):
        self.backend = backend
        self.scheduler = scheduler

    def step(self) -> None:
        plan = self.scheduler.plan()
        if not plan:
            return
        tokens, positions, slots, outputs = plan.batch()
        rows = [r for seq, row in outputs for r in range(row, row + 1 + len(seq.draft))]
        status = self.backend.decode(tokens, positions, slots, rows)
        if status != 0:
            self._decode_failed(plan, status)
            return
        self.scheduler.decoded(plan, len(tokens))
        for seq, row in outputs:
            for follower in seq.followers:
                if follower.state is SeqState.FOLLOW:
                    self.scheduler.follow(seq, follower)
                    self._sample(follower, row)
            self._sample(seq, row)
            if seq.draft:
                self._verify(seq, row)

    def _verify(self, seq: Sequence, row: int) -> None:
        """Row i + 1 holds the logits after guess i: usable while every guess before it was the
        token sampled. Each one sampled is then the sequence's next token, as without guesses."""
        confirmed = 0
        for i, guess in enumerate(seq.draft):
            if seq.state is SeqState.DONE or seq.next_token != guess:
                break
            self.scheduler.speculation.confirmed(seq)
            confirmed += 1
            self._sample(seq, row + 1 + i)
        self.scheduler.speculation.verified(seq, confirmed)

    def _sample(self, seq: Sequence, row: int) -> None:
        token = seq.sampler.sample(row)
        if token is None:
            self.scheduler.finish(seq, FinishReason.ERROR, NOTHING_ALLOWED)
            return
        logprob = None
        if seq.logprobs is not None:
            value, top = self.backend.logprobs(row, token, seq.logprobs)
            logprob = (value, [self._top_logprob(t, lp) for t, lp in top])
        self.scheduler.take(seq, token, self.backend.piece(token), self.backend.is_eog(token), logprob)

    def _top_logprob(self, token: int, logprob: float) -> TopLogprob:
        piece = self.backend.piece(token)
        return TopLogprob(piece.decode("utf-8", errors="replace"), piece, logprob)

    def _decode_failed(self, plan: StepPlan, status: int) -> None:
        log.error("llama_decode failed with status %d for %d sequences", status, len(plan.sequences))
        failure = Failure("decode_failed", f"llama_decode failed with status {status}")
        for seq in plan.sequences:
            self.scheduler.finish(seq, FinishReason.ERROR, failure)
