"""The llama_batch every decode fills (part of Backend)."""

from __future__ import annotations

import ctypes

import llama_cpp as ll


class Batch:
    def __init__(self, n_batch: int):
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        # Field pointers are read once: each struct attribute access builds a new ctypes object.
        self._token = self.batch.token
        self._pos = self.batch.pos
        self._nseq = self.batch.n_seq_id
        self._seq = [self.batch.seq_id[i] for i in range(n_batch)]
        self._logits = self.batch.logits
        self._ones = (ctypes.c_int32 * n_batch)(*([1] * n_batch))

    def fill(self, tokens: list[int], positions: list[int], seq_ids: list[int], outputs: list[int]) -> None:
        """One sequence id per token; logits only for the batch indexes in `outputs`."""
        n = len(tokens)
        ctypes.memmove(self._token, (ctypes.c_int32 * n)(*tokens), 4 * n)
        ctypes.memmove(self._pos, (ctypes.c_int32 * n)(*positions), 4 * n)
        ctypes.memmove(self._nseq, self._ones, 4 * n)
        ctypes.memset(self._logits, 0, n)
        seq = self._seq
        for i, s in enumerate(seq_ids):
            seq[i][0] = s
        logits = self._logits
        for i in outputs:
            logits[i] = 1
        self.batch.n_tokens = n

    def free(self) -> None:
        ll.llama_batch_free(self.batch)
