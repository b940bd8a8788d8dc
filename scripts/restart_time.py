"""How long a model's worker takes to come back after a crash, and what each process holds.

Usage:
    python scripts/restart_time.py BASE_URL [--model ID] [--repeat N] [--gap S]

Kills the model's worker with SIGKILL (as the kernel's out-of-memory killer would), then times
until /health answers 200 again and the model serves a one-token request. Kills are spaced by
--gap seconds (default 65: past the crash window, so no back-off is included). Also prints the
resident memory of the server process (which holds no model) and of the worker. Linux only: it
reads /proc and sends the signal itself, so run it on the server's machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time

import httpx


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def worker_pid(base: str, model: str) -> int | None:
    return httpx.get(f"{base}/stats", timeout=5).json().get(model, {}).get("pid")


def one_restart(base: str, model: str) -> tuple[float, float]:
    """(seconds until /health is 200, seconds until a request is served) after one kill."""
    pid = worker_pid(base, model)
    os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    while worker_pid(base, model) == pid:
        time.sleep(0.005)
    while httpx.get(f"{base}/health", timeout=5).status_code != 200:
        time.sleep(0.005)
    healthy = time.perf_counter() - killed
    r = httpx.post(f"{base}/v1/chat/completions", timeout=60,
                   json={"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    r.raise_for_status()
    return healthy, time.perf_counter() - killed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url")
    p.add_argument("--model", default="smollm2-135m", help="the model id (the default model restarts at once)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--gap", type=float, default=65.0, help="seconds between kills")
    args = p.parse_args()
    base = args.base_url.rstrip("/")
    pid = worker_pid(base, args.model)
    if pid is None:
        raise SystemExit(f"{args.model} is not loaded on {base}")
    print(f"server pid {parent(pid)}: {rss_mb(parent(pid)):.0f} MB resident (no model in it); "
          f"worker pid {pid}: {rss_mb(pid):.0f} MB")
    health, served = [], []
    for i in range(args.repeat):
        if i:
            time.sleep(args.gap)
        h, s = one_restart(base, args.model)
        health.append(h)
        served.append(s)
        print(f"kill {i + 1}: /health 200 after {h:.2f} s, a request served after {s:.2f} s")
    print(f"median: /health {statistics.median(health):.2f} s, served {statistics.median(served):.2f} s")


if __name__ == "__main__":
    main()
