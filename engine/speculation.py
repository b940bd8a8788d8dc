"""Prompt-lookup speculation in the step loop: the guesses a step feeds, and what verifying them
leaves (engine/lookup.py finds the guesses; EngineCore._verify samples them)."""

from __future__ import annotations

from typing import Any

from .sequence import Sequence, SeqState
from .types import EngineStats

# Speculation only while this few sequences decode: guesses pay where a decode's cost hardly
# grows with its tokens (a GPU with a small batch); a full batch already uses the hardware.
MAX_SPECULATING = 2


class Speculation:
    def __init__(self, backend: Any, lookup_draft: int, stats: EngineStats):
        self.backend = backend
        self.lookup_draft = lookup_draft  # guessed tokens per step at most (sequences with a Lookup)
        self.stats = stats

    def guess(self, running: list[Sequence]) -> None:
        """Guesses for the decoding sequences, when few decode; never past a sequence's
        max_tokens, so every guessed position fits its context."""
        if not self.lookup_draft:
            return
        decoding = [s for s in running if s.state is SeqState.DECODE]
        few = len(decoding) <= MAX_SPECULATING
        for seq in decoding:
            k = min(self.lookup_draft, seq.lookup.length, seq.max_tokens - seq.n_generated - 1) \
                if few and seq.lookup else 0
            seq.draft = seq.lookup.draft(seq.prompt, seq.generated, k) if k > 0 else []

    def confirmed(self, seq: Sequence) -> None:
        """A guess fed in this step was the token sampled: its KV cells stand."""
        seq.n_past += 1
        self.stats.draft_accepted += 1

    def verified(self, seq: Sequence, confirmed: int) -> None:
        """After a step with guesses: the cells of those refused are dropped, and the sequence's
        next guesses are as long as this step's success says they should be."""
        if seq.slot >= 0 and confirmed < len(seq.draft):
            self.backend.remove_sequence(seq.slot, seq.n_past)
        if seq.lookup is not None:
            seq.lookup.learn(len(seq.draft), confirmed)
        seq.draft = []
