"""Many streams decoded together, and disconnects freeing their sequences."""

from __future__ import annotations

import asyncio
import time

import httpx

from .conftest import no_end

MODEL = "smollm2"


async def test_eight_concurrent_streams_complete_and_share_decode_steps(aclient, server):
    before = server.wait_idle()

    async def one(i: int) -> tuple[str, str]:
        stream = await aclient.chat.completions.create(
            model=MODEL, stream=True, max_tokens=32, temperature=0.7, seed=i,
            messages=[{"role": "user", "content": f"Tell me fact number {i} about owls."}])
        text, reason = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                reason = chunk.choices[0].finish_reason or reason
        return text, reason

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert all(text and reason in ("stop", "length") for text, reason in results)
    after = server.wait_idle()
    assert after["max_seqs_per_decode"] >= 4
    assert after["multi_seq_steps"] - before["multi_seq_steps"] >= 10, "the streams were not decoded together"
    assert after["free_slots"] == 8


def test_closing_a_stream_midway_frees_its_sequence(server):
    before = server.wait_idle()
    body = {"model": MODEL, "stream": True, "max_tokens": 3000, "temperature": 1.0, "logit_bias": no_end(),
            "messages": [{"role": "user", "content": "Write a very long story."}]}
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", f"{server.base_url}/v1/chat/completions", json=body) as r:
            lines = r.iter_lines()
            for _ in range(10):
                next(lines)
            assert server.stats()["running"] == 1
    stats = server.wait_idle()
    assert stats["running"] == 0 and stats["kv_tokens"] == 0
    assert stats["aborted"] == before["aborted"] + 1
    assert stats["generated_tokens"] - before["generated_tokens"] < 300, "it kept generating after the disconnect"


def test_a_non_streamed_request_is_aborted_when_its_client_goes_away(server):
    before = server.wait_idle()
    body = {"model": MODEL, "max_tokens": 3000, "temperature": 1.0, "logit_bias": no_end(),
            "messages": [{"role": "user", "content": "Write a very long story."}]}
    try:
        httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=1.0)
    except httpx.ReadTimeout:
        pass
    deadline = time.monotonic() + 10
    while server.stats()["aborted"] == before["aborted"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = server.wait_idle()
    assert stats["aborted"] == before["aborted"] + 1
    assert stats["generated_tokens"] - before["generated_tokens"] < 500
