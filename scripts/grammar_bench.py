"""Decode speed with and without a grammar, one request at a time against a running server.

Usage: python scripts/grammar_bench.py [BASE_URL] [MODEL] [--runs 5] [--max-tokens 100]
Prints the median decode tokens/s of free text, a forced tool call, and a json_schema reply:
streamed, from the first generated chunk to the last, so the prompts' different lengths (the
tool instructions) and the replies' different lengths do not weigh in.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"]}}}]
SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
          "required": ["items"]}
CASES = {
    "free text": {},
    "forced tool call": {"tools": TOOLS, "tool_choice": "required"},
    "json_schema": {"response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}},
}


def decode_rate(http: httpx.Client, body: dict) -> float:
    """(completion tokens - 1) / (time of the last chunk - time of the first): the first token
    comes with the prefill, every later one is one decode step."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    first = last = None
    tokens = 0
    with http.stream("POST", "/chat/completions", json=body) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
            if delta.get("content") or delta.get("tool_calls"):
                last = time.perf_counter()
                first = first or last
    return (tokens - 1) / (last - first) if first and last > first else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url", nargs="?", default="http://127.0.0.1:8080")
    p.add_argument("model", nargs="?", default="smollm2")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=100)
    args = p.parse_args()
    with httpx.Client(base_url=args.base_url.rstrip("/") + "/v1", timeout=300) as http:
        for name, extra in CASES.items():
            rates = []
            for seed in range(args.runs):
                body = {"model": args.model, "max_tokens": args.max_tokens, "temperature": 0.8, "seed": seed,
                        "messages": [{"role": "user", "content": "Weather in Paris for the next days?"}], **extra}
                rates.append(decode_rate(http, body))
            runs = ", ".join(f"{r:.0f}" for r in rates)
            print(f"{name:18s} median {statistics.median(rates):6.1f} tok/s  (runs: {runs})")


if __name__ == "__main__":
    main()
