"""A stand-in for engine.backend.Backend, for scheduler/engine/worker tests only.

Tokens are byte values; token 0 is end-of-generation. Each sequence's sampler replays a script
chosen by its seed, so tests know exactly what each sequence generates. `make_backend` is the
factory a worker loads it through ("tests.fake_backend:make_backend")."""

from __future__ import annotations

import os
import threading
import time

from engine.types import SamplingParams

EOG = 0
BOS = 2
PLAIN = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # the prompt's tokens are its bytes
NO_TOKEN = -1  # in a script: the sampler finds nothing allowed (returns None)
SCRIPTS = {1: b"abc", 2: b"hello STOP more", 3: b"0123456789", 4: b"x" * 1000, 5: b"y" * 200,
           8: [NO_TOKEN], 9: [ord("a"), ord("b"), NO_TOKEN], 10: b"z" * 40}


class FakeSampler:
    def __init__(self, script: bytes | list[int], gate: threading.Event | None, delay: float = 0.0):
        self._tokens = list(script) + [EOG]
        self._gate = gate
        self._delay = delay
        self.freed = False

    def sample(self, index: int) -> int | None:
        if self._gate is not None:
            self._gate.wait(5)
        if self._delay:
            time.sleep(self._delay)
        token = self._tokens.pop(0) if len(self._tokens) > 1 else self._tokens[0]
        return None if token == NO_TOKEN else token

    def free(self) -> None:
        self.freed = True


class FakeBackend:
    def __init__(self, n_seq: int = 4, n_batch: int = 16, scripts: dict[int, bytes | list[int]] | None = None,
                 fail_decode: bool = False, delay: float = 0.0):
        self.n_seq = n_seq
        self.n_batch = n_batch
        self.n_vocab = 256  # byte tokens
        self.bos, self.eos, self.adds_bos = BOS, EOG, False
        self.n_embd = 4
        self.scripts = {**SCRIPTS, **(scripts or {})}
        self.fail_decode = fail_decode
        self.delay = delay  # seconds each sample takes, so tests can act mid-generation
        self.gate: threading.Event | None = None  # set it to hold sample() until released
        self.gated_seeds: set[int] | None = None  # only these seeds' samplers wait (None: all)
        self.decodes: list[list[int]] = []  # sequence ids per llama_decode call
        self.removed: list[int] = []
        self.trims: list[tuple[int, int]] = []  # (sequence, from position) tails dropped
        self.copies: list[tuple[int, int, int]] = []  # (src, dst, n) prefix shares
        self.samplers: list[FakeSampler] = []
        self.closed = False

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return list(text.encode())

    def chat_template(self) -> tuple[str, str]:
        return "gguf", PLAIN

    def token_text(self, token: int) -> str:
        return chr(token)

    def decode(self, tokens, positions, seq_ids, outputs) -> int:
        assert len(tokens) == len(positions) == len(seq_ids) <= self.n_batch
        self.decodes.append(list(seq_ids))
        return -1 if self.fail_decode else 0

    def check_grammar(self, grammar) -> None:
        pass

    def new_sampler(self, params: SamplingParams, grammar=None) -> FakeSampler:
        gated = self.gated_seeds is None or params.seed in self.gated_seeds
        # The seed picks the script; for a protocol without seeds (Anthropic), top_k does.
        script = self.scripts.get(params.seed if params.seed is not None else params.top_k, b"hello world")
        sampler = FakeSampler(script, self.gate if gated else None, self.delay)
        self.samplers.append(sampler)
        return sampler

    def logprobs(self, index: int, token: int, top_n: int):
        return -0.5, [(token, -0.5), (EOG, -2.0)][:top_n]

    def piece(self, token: int) -> bytes:
        return bytes([token]) if token != EOG else b""

    def token_bytes(self, token: int) -> bytes:
        return bytes([token])

    def is_eog(self, token: int) -> bool:
        return token == EOG

    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool:
        if from_pos == 0:
            self.removed.append(seq)
        else:
            self.trims.append((seq, from_pos))
        return True

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        self.copies.append((src, dst, n))

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        return [[float(len(toks)), float(sum(toks) % 7), 0.0, 1.0] for toks in inputs]

    def close(self) -> None:
        self.closed = True


def make_backend(spec) -> FakeBackend:
    """The worker's factory. FAKE_DELAY (seconds per sampled token) slows generation down so a
    test can act while a request runs (kill its worker, say)."""
    return FakeBackend(n_seq=spec.parallel, n_batch=spec.n_batch, delay=float(os.environ.get("FAKE_DELAY", "0")))
