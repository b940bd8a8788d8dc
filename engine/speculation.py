"""Speculation in the step loop: the guesses a step feeds, and what verifying them leaves.
Guesses come from prompt lookup (engine/lookup.py) or a draft model (engine/drafter.py);
EngineCore._verify samples them."""

from __future__ import annotations

from typing import Any

from .sequence import Sequence, SeqState
from .types import EngineStats

# Speculation only while this few sequences decode: guesses pay where a decode's cost hardly
# grows with its tokens (a GPU with a small batch); a full batch already uses the hardware.
MAX_SPECULATING = 2


class Speculation:
    def __init__(self, backend: Any, lookup_draft: int, stats: EngineStats, drafter: Any = None):
        self.backend = backend
        self.lookup_draft = lookup_draft  # guessed tokens per step at most (sequences with a Lookup)
        self.drafter = drafter  # a draft model's Drafter: guesses for every sequence, lookup or not
        self.stats = stats

    def guess(self, running: list[Sequence]) -> None:
        """Guesses for the decoding sequences, when few decode; never past a sequence's
        max_tokens, so every guessed position fits its context."""
        if not (self.lookup_draft or self.drafter):
            return
        decoding = [s for s in running if s.state is SeqState.DECODE]
        few = len(decoding) <= MAX_SPECULATING
        for seq in decoding:
            seq.draft = []
        if not few:
            return
        if self.drafter is not None:
            self._draft_model(decoding)
            return
        for seq in decoding:
            k = min(self.lookup_draft, seq.lookup.length, seq.max_tokens - seq.n_generated - 1) if seq.lookup else 0
            seq.draft = seq.lookup.draft(seq.prompt, seq.generated, k) if k > 0 else []

    def _draft_model(self, decoding: list[Sequence]) -> None:
        room = [(seq, min(self.drafter.n_draft, seq.max_tokens - seq.n_generated - 1)) for seq in decoding]
        room = [(seq, k) for seq, k in room if k > 0]
        if room:
            drafts = self.drafter.draft([(seq.slot, seq.prompt + seq.generated, k) for seq, k in room])
            for (seq, _), draft in zip(room, drafts):
                seq.draft = draft

    def confirmed(self, seq: Sequence) -> None:
        """A guess fed in this step was the token sampled: its KV cells stand."""
        seq.n_past += 1
        self.stats.draft_accepted += 1

    def verified(self, seq: Sequence, confirmed: int) -> None:
        """After a step with guesses: the cells of those refused are dropped, and the sequence's
        next guesses are as long as this step's success says they should be."""
        if seq.slot >= 0 and confirmed < len(seq.draft):
            self.backend.remove_sequence(seq.slot, seq.n_past)
        if seq.lookup is not None and self.drafter is None:
            seq.lookup.learn(len(seq.draft), confirmed)
        seq.draft = []
