"""A stand-in for engine.backend.Backend, for scheduler/engine unit tests only.

Tokens are byte values; token 0 is end-of-generation. Each sequence's sampler replays a script
chosen by its seed, so tests know exactly what each sequence generates."""

from __future__ import annotations

import threading

from engine.types import SamplingParams

EOG = 0


class FakeSampler:
    def __init__(self, script: bytes, gate: threading.Event | None):
        self._tokens = list(script) + [EOG]
        self._gate = gate
        self.freed = False

    def sample(self, index: int) -> int:
        if self._gate is not None:
            self._gate.wait(5)
        return self._tokens.pop(0) if len(self._tokens) > 1 else self._tokens[0]

    def free(self) -> None:
        self.freed = True


class FakeBackend:
    def __init__(self, n_seq: int = 4, n_batch: int = 16, scripts: dict[int, bytes] | None = None, fail_decode: bool = False):
        self.n_seq = n_seq
        self.n_batch = n_batch
        self.n_vocab = 256  # byte tokens
        self.scripts = scripts or {}
        self.fail_decode = fail_decode
        self.gate: threading.Event | None = None  # set it to hold sample() until released
        self.gated_seeds: set[int] | None = None  # only these seeds' samplers wait (None: all)
        self.decodes: list[list[int]] = []  # sequence ids per llama_decode call
        self.removed: list[int] = []
        self.copies: list[tuple[int, int, int]] = []  # (src, dst, n) prefix shares
        self.samplers: list[FakeSampler] = []

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return list(text.encode())

    def decode(self, tokens, positions, seq_ids, outputs) -> int:
        assert len(tokens) == len(positions) == len(seq_ids) <= self.n_batch
        self.decodes.append(list(seq_ids))
        return -1 if self.fail_decode else 0

    def check_grammar(self, grammar) -> None:
        pass

    def new_sampler(self, params: SamplingParams, grammar=None) -> FakeSampler:
        gated = self.gated_seeds is None or params.seed in self.gated_seeds
        sampler = FakeSampler(self.scripts.get(params.seed or 0, b"hello world"), self.gate if gated else None)
        self.samplers.append(sampler)
        return sampler

    def logprobs(self, index: int, token: int, top_n: int):
        return -0.5, [(token, -0.5), (EOG, -2.0)][:top_n]

    def piece(self, token: int) -> bytes:
        return bytes([token]) if token != EOG else b""

    def is_eog(self, token: int) -> bool:
        return token == EOG

    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool:
        if from_pos == 0:
            self.removed.append(seq)
        return True

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        self.copies.append((src, dst, n))

    def close(self) -> None:
        pass
