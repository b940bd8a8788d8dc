#!/usr/bin/env python3
"""Step-loop overhead of the engine, without a model: what the engine itself costs per step.

The real Preparer, Scheduler and EngineCore, and the worker's per-step publishing (drain, the
counters, and pickling the Step message it sends to the server), run over a zero-cost backend:
decode only fills the llama_batch and returns, and each sampler replays tokens from a fixed array. What is left is the
engine's own work per step (planning, the batch, per-sequence sampling calls, detokenizing, stop
matching, Deltas), which on a GPU runs between decodes. On an H100 a 1-3B model's decode step at
batch 64 takes about 10 ms, so the target is under 1 ms per step at 64 sequences.

    python scripts/bench_engine.py [--seqs 1,8,64,256] [--tokens 256] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import GenerateRequest, Message, SamplingParams  # noqa: E402
from engine.backend.batch import Batch  # noqa: E402
from engine.chat_template import ChatTemplate  # noqa: E402
from engine.config import ModelSpec, Source  # noqa: E402
from engine.core import EngineCore  # noqa: E402
from engine.messages import Step  # noqa: E402
from engine.prepare import Preparer  # noqa: E402
from engine.scheduler import Scheduler  # noqa: E402
from engine.sequence import SeqState  # noqa: E402

TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
N_VOCAB = 49152
# Tokens a sampler replays: ordinary words' pieces (two to five bytes each), never end-of-generation.
PIECES = [w.encode() for w in " the quick brown fox jumps over a lazy dog and then it".split(" ")]


class ReplaySampler:
    """Returns tokens from a fixed array: zero sampling cost, so only the engine is measured."""

    __slots__ = ("_i",)

    def __init__(self) -> None:
        self._i = 0

    def sample(self, row: int) -> int:
        self._i += 1
        return 1 + self._i % len(PIECES)

    def free(self) -> None:
        pass


class ZeroCostBackend:
    """engine.core.BackendLike with nothing behind it."""

    def __init__(self, n_seq: int, n_batch: int):
        self.n_seq, self.n_batch, self.n_vocab, self.bos = n_seq, n_batch, N_VOCAB, 0
        self._pieces = {t: PIECES[t - 1] for t in range(1, len(PIECES) + 1)}
        self._batch = Batch(n_batch)

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return [1 + b % len(PIECES) for b in text.encode()]

    def decode(self, tokens, positions, seq_ids, outputs) -> int:
        self._batch.fill(tokens, positions, seq_ids, outputs)  # the llama_batch is built, as for real
        return 0

    def new_sampler(self, params, grammar=None) -> ReplaySampler:
        return ReplaySampler()

    def check_grammar(self, grammar) -> None:
        pass

    def piece(self, token: int) -> bytes:
        return self._pieces.get(token, b"")

    def is_eog(self, token: int) -> bool:
        return False

    def logprobs(self, row, token, top_n):
        return 0.0, []

    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool:
        return True

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def run_once(n_seqs: int, tokens: int) -> dict:
    """n_seqs requests of `tokens` tokens each, admitted together; times the decode steps."""
    backend = ZeroCostBackend(n_seq=n_seqs, n_batch=max(512, n_seqs))
    spec = ModelSpec(id="zero", source=Source(path="-"), n_ctx=tokens + 64, parallel=n_seqs, n_batch=backend.n_batch)
    preparer = Preparer(spec, backend, ChatTemplate(TEMPLATE))
    scheduler = Scheduler(backend)
    core = EngineCore(backend, scheduler)
    for rid in range(n_seqs):
        request = GenerateRequest(messages=[Message("user", f"request {rid}: say something")],
                                  sampling=SamplingParams(temperature=0), max_tokens=tokens, stop=["\n\n"])
        scheduler.add(preparer.prepare(rid, request))
    steps: list[float] = []
    generated = 0
    while scheduler.busy:
        # A pure decode step: every sequence admitted and past its prompt (and the batch full).
        pure = not scheduler.waiting and len(scheduler.running) == n_seqs and all(
            s.state is SeqState.DECODE for s in scheduler.running)
        started = time.perf_counter()
        core.step()
        deltas = scheduler.drain()
        ForkingPickler.dumps(Step(deltas, scheduler.snapshot()))  # what the worker sends each step
        elapsed = time.perf_counter() - started
        if pure:
            steps.append(elapsed)
            generated += n_seqs
    return {"seqs": n_seqs, "steps": len(steps), "ms_per_step": statistics.median(steps) * 1000,
            "tok_s": generated / sum(steps) if steps else 0.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seqs", default="1,8,64,256", help="comma list of concurrent sequences")
    p.add_argument("--tokens", type=int, default=256, help="tokens generated per sequence")
    p.add_argument("--rounds", type=int, default=3, help="runs per level; the median is reported")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    rows = []
    for n in (int(x) for x in args.seqs.split(",")):
        runs = [run_once(n, args.tokens) for _ in range(args.rounds)]
        best = sorted(runs, key=lambda r: r["ms_per_step"])[len(runs) // 2]
        rows.append(best)
    print("| sequences | ms per step (median) | engine tok/s | decode steps |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seqs']} | {r['ms_per_step']:.3f} | {r['tok_s']:,.0f} | {r['steps']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
