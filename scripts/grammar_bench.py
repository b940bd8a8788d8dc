"""Decode speed with and without a grammar, one request at a time against a running server.

Usage: python scripts/grammar_bench.py [BASE_URL] [MODEL] [--runs 5] [--max-tokens 100]
Prints the median tokens/s of free text, a forced tool call, and a json_schema reply.
"""

from __future__ import annotations

import argparse
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
                started = time.perf_counter()
                usage = http.post("/chat/completions", json=body).raise_for_status().json()["usage"]
                rates.append(usage["completion_tokens"] / (time.perf_counter() - started))
            runs = ", ".join(f"{r:.0f}" for r in rates)
            print(f"{name:18s} median {statistics.median(rates):6.1f} tok/s  (runs: {runs})")


if __name__ == "__main__":
    main()
