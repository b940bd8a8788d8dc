"""Speculation with a draft model (models.yaml `draft: {source, n_draft}`): a smaller model of the
same vocabulary guesses the next tokens greedily; the main model confirms them in one decode
(engine/core.py `_verify`), so the text is the one the main model alone would give.

The draft model has its own context with a sequence per slot of the main one. Before each guess
its sequence is brought level with the main one's context: the cells past their common prefix are
dropped (refused guesses, or another request that held the slot) and the rest is decoded, so a
slot's shared prompt prefix is reused here as in the main cache."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Drafter:
    def __init__(self, backend: Any, n_draft: int):
        self.backend = backend  # BackendLike plus argmax(row)
        self.n_draft = n_draft
        self._kv: dict[int, list[int]] = {}  # slot -> the tokens its draft cells hold, in order

    def draft(self, wanted: list[tuple[int, list[int], int]]) -> list[list[int]]:
        """For each (slot, context, k >= 1): up to k greedy guesses of what follows the context
        (whose last token the main model has not decoded yet); none for a slot still catching
        up or after a failed draft decode."""
        guesses: list[list[int]] = [[] for _ in wanted]
        level = self._catch_up(wanted)
        if not level:
            return guesses
        index = {slot: i for i, (slot, _, _) in enumerate(wanted)}
        if not self._feed([(slot, wanted[index[slot]][1][-1]) for slot in level], outputs=True):
            return guesses
        active = [index[slot] for slot in level]  # row r of the last decode holds active[r]'s logits
        while active:
            for row, i in enumerate(active):
                guesses[i].append(self.backend.argmax(row))
            active = [i for i in active if len(guesses[i]) < wanted[i][2]]
            if not active or not self._feed([(wanted[i][0], guesses[i][-1]) for i in active], outputs=True):
                break
        return guesses

    def _catch_up(self, wanted: list[tuple[int, list[int], int]]) -> list[int]:
        """Decode, in one decode of at most n_batch tokens, what the slots' draft cells lack of
        their contexts but the last token. The slots now level (a long prompt takes a few steps,
        so that one step never stalls the other sequences for a whole prefill); [] on failure."""
        rest = []
        for slot, context, _ in wanted:
            held = self._kv.setdefault(slot, [])
            same = min(_common_prefix(held, context), len(context) - 1)
            if same < len(held):
                if not self.backend.remove_sequence(slot, same):  # a model that cannot cut its cells
                    self.backend.remove_sequence(slot, 0)
                    same = 0
                del held[same:]
            rest.append(context[same:-1])
        budget, batch, level = self.backend.n_batch - len(wanted), [], []
        for (slot, _, _), missing in zip(wanted, rest):
            take = missing[:max(0, budget)]
            budget -= len(take)
            batch += [(slot, t) for t in take]
            if len(take) == len(missing):
                level.append(slot)
        if batch and not self._feed(batch, outputs=False):
            return []
        return level

    def _feed(self, fed: list[tuple[int, int]], outputs: bool) -> bool:
        """Decode (slot, token) pairs, each at its slot's next position; with `outputs`, row i
        holds the logits after pair i."""
        slots = [slot for slot, _ in fed]
        positions = []
        for slot, token in fed:
            positions.append(len(self._kv[slot]))
            self._kv[slot].append(token)
        rows = list(range(len(fed))) if outputs else []
        return self._decode([token for _, token in fed], positions, slots, rows)

    def _decode(self, tokens: list[int], positions: list[int], slots: list[int], outputs: list[int]) -> bool:
        status = self.backend.decode(tokens, positions, slots, outputs)
        if status != 0:
            # The draft cells of these slots are in doubt: forget them; guesses are only ever
            # an optimisation, the main model goes on without them.
            log.warning("draft model decode failed with status %d; no guesses this step", status)
            for slot in set(slots):
                self.backend.remove_sequence(slot, 0)
                self._kv[slot] = []
        return status == 0

    def close(self) -> None:
        self.backend.close()


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix, by halving with slice comparisons (C speed): contexts run to
    tens of thousands of tokens and usually differ only in their last few."""
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo]; the answer is <= hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
