"""ggserve on Ray Serve: both protocols and streaming through the ingress, prefix-affinity routing,
cancellation, a replica killed under load, and autoscaling from one replica to two."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import httpx
import openai
import pytest

from server.ray.app import ClusterSpec

SYSTEM = "You are a careful assistant for a shop that sells garden tools. " * 40  # ~2,500 characters
COUNT = "Count from 1 to 300, one number per line, and nothing else."


async def stream_chat(base_url: str, content: str, max_tokens: int, *, system: str | None = None,
                      cache_key: str | None = None, on_text=None) -> dict:
    """One streamed chat completion over plain HTTP: its replica header, text, usage and error."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    body = {"model": "smollm2", "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if cache_key:
        body["prompt_cache_key"] = cache_key
    out = {"text": "", "usage": None, "error": None, "replica": None}
    async with httpx.AsyncClient(timeout=120) as http:
        async with http.stream("POST", f"{base_url}/v1/chat/completions", json=body) as r:
            assert r.status_code == 200, await r.aread()
            out["replica"] = r.headers.get("x-ggserve-replica")
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    out["error"] = chunk["error"]
                    continue
                for choice in chunk.get("choices", []):
                    out["text"] += choice["delta"].get("content") or ""
                    if on_text is not None and out["text"]:
                        on_text(out)
                out["usage"] = chunk.get("usage") or out["usage"]
    return out


def test_both_protocols_and_streaming_through_the_ingress(cluster):
    client = openai.OpenAI(base_url=f"{cluster.base_url}/v1", api_key="unused")
    reply = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert reply.headers["x-ggserve-replica"]
    done = reply.parse()
    assert done.choices[0].message.content and done.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=16, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    response = client.responses.create(model="smollm2", input="Name a colour.", max_output_tokens=16)
    assert response.status in ("completed", "incomplete") and response.output_text
    claude = anthropic.Anthropic(base_url=cluster.base_url, api_key="unused")
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=16,
                                messages=[{"role": "user", "content": "Hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.usage.output_tokens > 0
    count = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}])
    assert count.input_tokens > 0


def test_completions_and_embeddings_through_the_ingress(cluster):
    client = openai.OpenAI(base_url=f"{cluster.base_url}/v1", api_key="unused")
    done = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=8)
    assert done.choices[0].text and done.usage.completion_tokens > 0
    vectors = client.embeddings.create(model="embed", input=["a garden rake", "a rake for the garden"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 100
    with pytest.raises(openai.BadRequestError) as info:  # an engine's refusal crosses Ray intact
        client.embeddings.create(model="smollm2", input="x")
    assert "embedding" in info.value.message


def test_a_schema_too_deep_to_cross_is_a_400_naming_it(cluster):
    schema: dict = {"type": "string"}
    for _ in range(400):
        schema = {"type": "object", "properties": {"a": schema}}
    r = httpx.post(f"{cluster.base_url}/v1/chat/completions", timeout=60, json={
        "model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("response_format"), r.json()


def test_a_burst_spreads_over_both_replicas(cluster):
    async def burst():
        return await asyncio.gather(*(stream_chat(cluster.base_url, f"Say the number {i}.", 8) for i in range(6)))

    replies = asyncio.run(burst())
    assert all(r["error"] is None for r in replies)
    assert len({r["replica"] for r in replies}) == 2, [r["replica"] for r in replies]


def test_requests_sharing_a_long_system_prompt_land_on_one_replica_and_reuse_its_cache(cluster):
    async def turns():
        return [await stream_chat(cluster.base_url, f"Question {i}: what is a {tool}?", 8, system=SYSTEM)
                for i, tool in enumerate(("rake", "hoe", "spade", "trowel"))]

    replies = asyncio.run(turns())
    assert len({r["replica"] for r in replies}) == 1, [r["replica"] for r in replies]
    prompt = replies[0]["usage"]["prompt_tokens"]
    for r in replies[1:]:
        assert r["usage"]["prompt_tokens_details"]["cached_tokens"] >= 0.8 * prompt, r["usage"]


def test_a_client_disconnect_cancels_the_sequence_on_its_replica(cluster):
    async def leave_early():
        body = {"model": "smollm2", "messages": [{"role": "user", "content": COUNT}], "max_tokens": 1500,
                "temperature": 0, "stream": True}
        async with httpx.AsyncClient(timeout=60) as http:
            async with http.stream("POST", f"{cluster.base_url}/v1/chat/completions", json=body) as r:
                seen = 0
                async for line in r.aiter_lines():
                    seen += line.startswith("data: ")
                    if seen >= 5:
                        break  # closes the connection mid-stream

    before = cluster.stats()["aborted"]
    asyncio.run(leave_early())
    deadline = time.monotonic() + 30
    while True:
        stats = cluster.stats()
        if stats["running"] == 0 and stats["aborted"] > before:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)


def test_a_killed_replica_fails_its_running_streams_and_its_queued_requests_move(cluster):
    """Four requests with one prompt_cache_key go to one replica: two run (parallel 2), two wait.
    Killing that replica ends the two running streams with an error; the two waiting ones are
    served by the other replica."""
    async def run():
        seen: dict[int, dict] = {}
        tasks = [asyncio.create_task(stream_chat(cluster.base_url, COUNT, 300, cache_key="kill-test",
                                                 on_text=lambda out, i=i: seen.setdefault(i, out)))
                 for i in range(4)]
        deadline = time.monotonic() + 60
        while len(seen) < 2:
            assert time.monotonic() < deadline, "no stream started"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        running = set(seen)
        victim = seen[min(running)]["replica"]
        assert len(running) == 2 and all(seen[i]["replica"] == victim for i in running), seen
        await asyncio.to_thread(cluster.kill_replica, victim)
        return await asyncio.gather(*tasks), running

    replies, running = asyncio.run(run())
    for i, r in enumerate(replies):
        if i in running:
            assert r["error"] is not None and r["error"]["code"] == "model_crashed", r
        else:
            assert r["error"] is None and r["text"] and r["usage"]["completion_tokens"] > 0, r
    deadline = time.monotonic() + 120
    while cluster.replicas_running() < 2:  # Ray Serve replaces the dead replica
        assert time.monotonic() < deadline, "the dead replica was not replaced"
        time.sleep(1)


def test_autoscaling_goes_from_one_replica_to_two_under_load(cluster):
    cluster.deploy(ClusterSpec(min_replicas=1, max_replicas=2, target_ongoing=1, upscale_delay_s=1))
    deadline = time.monotonic() + 60
    while cluster.replicas_running() != 1:  # the redeploy drops to min_replicas
        assert time.monotonic() < deadline, cluster.replicas_running()
        time.sleep(1)

    async def load():
        tasks = [asyncio.create_task(stream_chat(cluster.base_url, f"{COUNT} ({i})", 250)) for i in range(4)]
        grown = False
        for _ in range(120):
            grown = grown or await asyncio.to_thread(cluster.replicas_running) == 2
            if grown or all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.5)
        return grown, await asyncio.gather(*tasks)

    grown, replies = asyncio.run(load())
    assert grown, "the autoscaler never added a replica"
    assert all(r["error"] is None and r["text"] for r in replies)
