"""Routing on Ray Serve, measured: agent conversations over replicas, prefix affinity vs round robin
(share of prompt tokens served from the prefix cache, TTFT p50/p95), and the Ray path's overhead
per request against a direct ggserve at c=1.

    python scripts/bench_ray.py [--replicas 2] [--agents 8] [--turns 4] [--rounds 1]

Starts a local Ray cluster (127.0.0.1) and, for the overhead, a direct `python -m server`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import time

import httpx

TOPICS = ["gardening", "astronomy", "cooking", "sailing", "chess", "pottery", "cycling", "photography",
          "beekeeping", "origami", "carpentry", "knitting"]


def system_prompt(i: int) -> str:
    """About 1,000 tokens of instructions, different for each agent from its first words."""
    topic = TOPICS[i % len(TOPICS)]
    rules = " ".join(f"Rule {n} for the {topic} assistant: answer briefly, cite the {topic} handbook "
                     f"section {n}, and never invent facts about {topic}." for n in range(1, 41))
    return f"Agent {i}. You are an expert {topic} assistant. {rules}"


async def turn(http: httpx.AsyncClient, url: str, messages: list[dict]) -> dict:
    body = {"model": "smollm2", "messages": messages, "max_tokens": 24, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start, first, text, usage = time.perf_counter(), None, "", None
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                if choice["delta"].get("content"):
                    first = first or time.perf_counter()
                    text += choice["delta"]["content"]
            usage = chunk.get("usage") or usage
    return {"ttft": (first or time.perf_counter()) - start, "text": text, "prompt": usage["prompt_tokens"],
            "cached": usage["prompt_tokens_details"]["cached_tokens"]}


async def agents(url: str, n_agents: int, n_turns: int) -> list[dict]:
    async def conversation(i: int) -> list[dict]:
        messages = [{"role": "system", "content": system_prompt(i)}]
        out = []
        think = random.Random(i)  # seeded: both policies see the same pauses
        for t in range(n_turns):
            # An agent's pause between turns (reading a reply, running a tool); without it the
            # agents move in lock-step and round robin happens to send each one back where it was.
            await asyncio.sleep(think.uniform(0, 2.0))
            messages.append({"role": "user", "content": f"Question {t + 1}: give me one tip."})
            result = await turn(http, url, messages)
            messages.append({"role": "assistant", "content": result["text"]})
            out.append(result)
        return out

    async with httpx.AsyncClient(timeout=600) as http:
        return [r for conv in await asyncio.gather(*(conversation(i) for i in range(n_agents))) for r in conv]


def summary(results: list[dict]) -> dict:
    ttfts = sorted(r["ttft"] for r in results)
    return {"requests": len(results), "cached_share": sum(r["cached"] for r in results) / sum(r["prompt"] for r in results),
            "ttft_p50": statistics.median(ttfts), "ttft_p95": ttfts[max(0, round(0.95 * len(ttfts)) - 1)]}


async def latency(url: str, n: int) -> list[float]:
    """Seconds per one-token, non-streamed request, one at a time."""
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}
    out = []
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(n):
            start = time.perf_counter()
            (await http.post(f"{url}/v1/chat/completions", json=body)).raise_for_status()
            out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--latency-requests", type=int, default=40)
    args = p.parse_args()

    import ray
    from ray import serve

    from engine import builtin_default
    from server.ray.app import ClusterSpec, build
    from server.settings import Settings

    cfg = builtin_default()
    cfg = dataclasses.replace(cfg, models=tuple(dataclasses.replace(m, n_ctx=4096, parallel=4, n_threads=1)
                                                for m in cfg.models))
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", num_cpus=2 * args.replicas + 1)
    serve.start(http_options={"host": "127.0.0.1", "port": 8390}, logging_config={"log_level": "WARNING"})
    url = "http://127.0.0.1:8390"
    for rnd in range(args.rounds):
        for policy in ("prefix", "round_robin"):
            serve.run(build(cfg, Settings(log_level="warning"), ClusterSpec(replicas=args.replicas, policy=policy)),
                      name="ggserve", route_prefix="/")
            s = summary(asyncio.run(agents(url, args.agents, args.turns)))
            print(f"round {rnd + 1} {policy:11s}: {s['requests']} requests, prompt tokens from cache "
                  f"{100 * s['cached_share']:.1f}%, TTFT p50 {s['ttft_p50']:.2f}s p95 {s['ttft_p95']:.2f}s", flush=True)
            serve.delete("ggserve")
    serve.run(build(cfg, Settings(log_level="warning"), ClusterSpec(replicas=1)), name="ggserve", route_prefix="/")
    direct = subprocess.Popen([sys.executable, "-m", "server", "--port", "8391", "--log-level", "warning"])
    try:
        for _ in range(120):
            try:
                if httpx.get("http://127.0.0.1:8391/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        via_ray, plain = [], []
        for _ in range(4):  # interleaved, so machine noise hits both
            via_ray += asyncio.run(latency(url, args.latency_requests // 4))
            plain += asyncio.run(latency("http://127.0.0.1:8391", args.latency_requests // 4))
        r, d = statistics.median(via_ray), statistics.median(plain)
        print(f"c=1 one-token request, median of {len(plain)}: via Ray Serve {1000 * r:.1f} ms, direct {1000 * d:.1f} ms, "
              f"Ray overhead {1000 * (r - d):.1f} ms", flush=True)
    finally:
        direct.terminate()
        direct.wait()
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
