"""The draft model's bookkeeping (engine/drafter.py) over a stand-in whose "model" guesses the
token after t is t + 1: which cells it decodes, drops and keeps as contexts move on."""

from __future__ import annotations

import pytest

from engine.drafter import Drafter, _common_prefix


class CountingModel:
    """A draft backend: argmax(row) is the token fed at that row, plus one."""

    def __init__(self, n_batch: int = 8, fail_at: int = -1):
        self.n_batch = n_batch
        self.cells: dict[int, dict[int, int]] = {}  # slot -> position -> token
        self.decoded: list[int] = []  # tokens per decode
        self.fail_at = fail_at  # the decode (by count) that fails
        self._rows: list[int] = []

    def decode(self, tokens, positions, slots, outputs) -> int:
        assert len(tokens) <= self.n_batch
        self.decoded.append(len(tokens))
        if len(self.decoded) - 1 == self.fail_at:
            return 1
        for token, pos, slot in zip(tokens, positions, slots):
            cells = self.cells.setdefault(slot, {})
            assert pos == len(cells), "each token goes right after the slot's last cell"
            cells[pos] = token
        self._rows = [tokens[i] for i in outputs]
        return 0

    def argmax(self, row: int) -> int:
        return self._rows[row] + 1

    def remove_sequence(self, slot: int, from_pos: int = 0) -> bool:
        cells = self.cells.setdefault(slot, {})
        for pos in [p for p in cells if p >= from_pos]:
            del cells[pos]
        return True

    def held(self, slot: int) -> list[int]:
        cells = self.cells.get(slot, {})
        return [cells[p] for p in range(len(cells))]


def test_guesses_follow_the_context_and_the_cells_hold_it_and_the_guesses_fed():
    model = CountingModel()
    drafter = Drafter(model, n_draft=4)
    context = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]  # 11 tokens: more than one step's 8
    assert drafter.draft([(0, context, 4)]) == [[]]  # catching up: 7 tokens, a row kept for the last
    assert drafter.draft([(0, context, 4)]) == [[21, 22, 23, 24]]
    assert model.held(0) == context + [21, 22, 23]  # the last guess is never fed
    assert model.decoded == [7, 3, 1, 1, 1, 1]


def test_a_refused_guess_drops_its_cells_and_only_what_is_new_is_decoded():
    model = CountingModel()
    drafter = Drafter(model, n_draft=3)
    context = [1, 2, 3]
    assert drafter.draft([(0, context, 3)]) == [[4, 5, 6]]
    # The main model kept the first guess, then sampled 9 instead of 5.
    model.decoded.clear()
    assert drafter.draft([(0, context + [4, 9], 3)]) == [[10, 11, 12]]
    assert model.held(0) == [1, 2, 3, 4, 9, 10, 11]
    assert model.decoded == [1, 1, 1]  # 9 alone to catch up, then two guesses fed


def test_two_slots_share_each_decode_and_a_new_request_in_a_slot_replaces_its_cells():
    model = CountingModel()
    drafter = Drafter(model, n_draft=2)
    assert drafter.draft([(0, [1, 2], 2), (1, [50, 51, 52], 1)]) == [[3, 4], [53]]
    assert model.decoded == [3, 2, 1]  # both catch-ups, both last tokens, slot 0's second guess
    assert drafter.draft([(1, [7, 8], 2)]) == [[9, 10]]
    assert model.held(1) == [7, 8, 9] and model.held(0) == [1, 2, 3]


def test_a_failed_draft_decode_gives_no_guesses_and_forgets_the_slot():
    model = CountingModel(fail_at=1)
    drafter = Drafter(model, n_draft=3)
    assert drafter.draft([(0, [1, 2, 3], 3)]) == [[]]
    assert model.held(0) == []
    assert drafter.draft([(0, [1, 2, 3], 3)]) == [[4, 5, 6]]  # decoded afresh
    assert model.held(0) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("a, b, n", [([], [1], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2),
                                     ([1, 2, 3, 4, 5], [1, 2, 9, 4, 5], 2), ([5], [6], 0)])
def test_common_prefix(a, b, n):
    assert _common_prefix(a, b) == n


class Uncuttable(CountingModel):
    """A draft model whose cells cannot be cut mid-sequence (a recurrent one): only whole."""

    def remove_sequence(self, slot: int, from_pos: int = 0) -> bool:
        return super().remove_sequence(slot, 0) if from_pos == 0 else False


def test_a_draft_model_that_cannot_cut_its_cells_starts_the_slot_again():
    model = Uncuttable()
    drafter = Drafter(model, n_draft=2)
    assert drafter.draft([(0, [1, 2, 3], 2)]) == [[4, 5]]
    assert drafter.draft([(0, [1, 2, 3, 9], 2)]) == [[10, 11]]  # 4 refused: cells past 3 must go
    assert model.held(0) == [1, 2, 3, 9, 10]
