"""llama.cpp sequence slots, and the prompt prefix each idle slot still holds in the KV cache."""

from __future__ import annotations

import os


def common_prefix_len(a: list[int], b: list[int]) -> int:
    # os.path.commonprefix works on any sequences and compares in C: fast for long prompts.
    return len(os.path.commonprefix([a, b]))


class SlotPool:
    """Free slots in least-recently-used order. A finished sequence leaves its KV cells in its
    slot, so a request that starts the same way (a follow-up turn, a repeated system prompt) is
    prefilled only from the first token that differs; the shared prefix is found in idle and
    running slots alike."""

    def __init__(self, n_slots: int, enabled: bool = True):
        self._free: list[int] = list(range(n_slots))
        self._cached: dict[int, list[int]] = {}
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self._free)

    def acquire(self, prompt: list[int], live: dict[int, list[int]]) -> tuple[int, int, int]:
        """Take a free slot for `prompt`: (slot, tokens reusable, slot holding them).

        The longest prefix is looked for in every slot, idle or running (`live` maps a running
        slot to the tokens in its KV cells); the source may be another slot, whose cells the
        caller then shares with the new one. A free slot that holds that prefix itself is
        preferred (no copy), then one next to running slots, then the least recently used one.
        At least one prompt token is always left to compute, because its logits give the first
        generated token."""
        held = {slot: common_prefix_len(tokens, prompt)
                for slot, tokens in (*self._cached.items(), *live.items())} if self.enabled else {}
        best_len = max(held.values(), default=0)
        if best_len == 0:
            slot, source = self._nearest_running(self._free, live), -1
        else:
            holders = [slot for slot in self._free if held.get(slot) == best_len]
            slot = self._nearest_running(holders or self._free, live)
            source = slot if holders else next(s for s, n in held.items() if n == best_len)
        self._free.remove(slot)
        self._cached.pop(slot, None)
        return slot, min(best_len, len(prompt) - 1), source

    @staticmethod
    def _nearest_running(choices: list[int], live: dict[int, list[int]]) -> int:
        """The choice with the most running neighbours (the first, least recently used, among
        equals). Running sequences in neighbouring slots decode in one pass over the weights:
        with a KV stream per sequence, llama.cpp runs the model once per run of consecutive
        sequence ids in a step."""
        return max(choices, key=lambda slot: (slot - 1 in live) + (slot + 1 in live))

    def acquire_empty(self) -> int:
        """The least recently used free slot, for a sequence that brings its own cells."""
        slot = self._free.pop(0)
        self._cached.pop(slot, None)
        return slot

    def release(self, slot: int, cached: list[int]) -> None:
        self._free.append(slot)
        if cached and self.enabled:
            self._cached[slot] = cached

    @property
    def cached_tokens(self) -> int:
        return sum(len(t) for t in self._cached.values())
