"""Clients that go away, rate limits that can be walked around, and counters read while the
engine runs (issue items 5, 7, 11, 12, 15)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import no_end

from .conftest import model, models_yaml, serve

LONG = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


def stats(srv, model_id: str = "smollm2-135m") -> dict:
    return httpx.get(f"{srv.base_url}/stats").json()[model_id]


def wait_idle(srv, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = stats(srv)
        if s["running"] == 0 and s["waiting"] == 0:
            return s
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory):
    yaml_text = models_yaml(model("smollm2-135m", aliases="[smollm2]", n_ctx=2048, parallel=1))
    with serve(tmp_path_factory.mktemp("one_slot"), yaml_text) as srv:
        yield srv


async def test_a_disconnect_storm_of_queued_requests_generates_nothing_for_them(one_slot):
    before = wait_idle(one_slot)
    async with httpx.AsyncClient(base_url=one_slot.base_url, timeout=120) as http:
        # The kept reply must outlast the twelve clients' 0.5 s: long enough, and no early end (at
        # 60 tokens it ended first on a faster CPU, and a queued request ran for a gone client).
        kept = asyncio.create_task(http.post("/v1/chat/completions", json={
            "model": "smollm2", "messages": LONG, "max_tokens": 300, "temperature": 0, "logit_bias": no_end()}))
        while stats(one_slot)["running"] == 0:
            await asyncio.sleep(0.02)

        async def gone(i: int) -> None:  # queued behind the one slot, then the client leaves
            with pytest.raises(httpx.TimeoutException):
                await http.post("/v1/chat/completions", timeout=0.5, json={
                    "model": "smollm2", "messages": LONG, "max_tokens": 200, "stream": i % 2 == 0})

        await asyncio.gather(*(gone(i) for i in range(12)))
        answer = (await kept).json()
    after = wait_idle(one_slot)
    assert after["aborted"] - before["aborted"] == 12
    # Only the request that stayed generated anything: none of the twelve ran for nobody.
    assert after["generated_tokens"] - before["generated_tokens"] == answer["usage"]["completion_tokens"]


def test_an_aborted_stream_is_charged_what_it_spent(one_slot):
    long_prompt = " ".join(f"Rule {i}: be kind to lighthouse keepers." for i in range(150))  # ~1,500 tokens
    with httpx.stream("POST", f"{one_slot.base_url}/v1/chat/completions", timeout=120, json={
            "model": "smollm2", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": long_prompt}]}) as r:
        for line in r.iter_lines():
            if '"content"' in line and '"content":""' not in line:
                break  # the first token: the prompt has been prefilled; now go away
    wait_idle(one_slot)
    time.sleep(0.5)
    lines = [line for line in one_slot.log.read_text().splitlines()
             if "path=/v1/chat/completions" in line and "status=200" in line]
    spent = re.search(r"prompt_tokens=(\d+) completion_tokens=(\d+)", lines[-1])
    assert int(spent.group(1)) > 1000 and int(spent.group(2)) >= 1, lines[-1]


def test_stats_can_be_read_while_the_engine_works(one_slot, tmp_path):
    client = openai.OpenAI(base_url=f"{one_slot.base_url}/v1", api_key="x", max_retries=0, timeout=120)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(lambda: client.chat.completions.create(model="smollm2", messages=LONG, max_tokens=40))
                for _ in range(3)]
        codes = set()
        while not all(j.done() for j in jobs):
            codes.add(httpx.get(f"{one_slot.base_url}/stats").status_code)
            codes.add(httpx.get(f"{one_slot.base_url}/metrics").status_code)
        assert all(j.result().usage.completion_tokens for j in jobs)
    assert codes == {200}


def test_made_up_tokens_do_not_escape_the_rate_limit(tmp_path):
    with serve(tmp_path, None, "--rate-limit-rpm", "2") as srv:
        codes = [httpx.get(f"{srv.base_url}/v1/models", headers={"Authorization": f"Bearer made-up-{i}"}).status_code
                 for i in range(3)]
    assert codes == [200, 200, 429]


def test_a_tool_call_on_a_fresh_server_never_takes_it_down(tmp_path):
    # The request from the issue, first thing on a fresh server: the model echoes the generic
    # instructions' "<tool_call></tool_call>"; the token "></" completed the lazy grammar's trigger
    # and carried "</" past it, and llama.cpp's grammar threw, ending the process.
    body = {"model": "smollm2", "max_tokens": 48, "temperature": 0,
            "messages": [{"role": "system", "content": "You answer only by calling tools."},
                         {"role": "user", "content": "Call the llm_time tool."}],
            "tools": [{"type": "function", "function": {
                "name": "llm_time", "description": "Returns the current time, as local time and UTC",
                "parameters": {"properties": {}, "type": "object"}}}]}
    with serve(tmp_path) as srv:
        for _ in range(3):
            r = httpx.post(f"{srv.base_url}/v1/chat/completions", json=body, timeout=60)
            assert r.status_code == 200, r.text
            message = r.json()["choices"][0]["message"]
            assert "<tool_call>" not in (message["content"] or "")
        assert srv.proc.poll() is None
