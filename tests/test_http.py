"""The HTTP layer in-process, over the real worker code on a thread with the fake backend
(create_app(registry=...)): renderers, the error table, failures mid-stream, crashes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import httpx
import pytest

from engine import ProcessLauncher, Registry, ThreadLauncher
from engine.config import ModelsConfig, ModelSpec, Source
from server.app import create_app
from server.settings import Settings

from .fake_backend import PLAIN

FAKE = "tests.fake_backend:make_backend"


def spec() -> ModelSpec:
    return ModelSpec(id="fake", aliases=("f",), source=Source(path="x"), n_ctx=64, parallel=4, n_batch=16,
                     chat_template=PLAIN)


def chat(seed: int, **kw) -> dict:
    return {"model": "f", "messages": [{"role": "user", "content": "hi"}], "seed": seed, **kw}


@pytest.fixture
async def http(request):
    launcher = getattr(request, "param", ThreadLauncher())
    registry = Registry(ModelsConfig(default="fake", models=(spec(),)), launcher, backend=FAKE)
    app = create_app(Settings(), registry=registry)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            client.registry = registry
            yield client


def sse_data(text: str) -> list:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_chat_completion_and_its_stream_render_the_same_text(http):
    body = (await http.post("/v1/chat/completions", json=chat(1))).json()
    assert body["choices"][0]["message"]["content"] == "abc" and body["usage"]["completion_tokens"] == 4
    stream = await http.post("/v1/chat/completions", json=chat(1, stream=True, stream_options={"include_usage": True}))
    chunks = sse_data(stream.text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "abc"
    assert chunks[-1]["usage"]["completion_tokens"] == 4 and stream.text.endswith("data: [DONE]\n\n")


async def test_anthropic_events_come_in_the_apis_order(http):
    r = await http.post("/v1/messages", json={"model": "f", "max_tokens": 10, "stream": True,
                                              "messages": [{"role": "user", "content": "hi"}]})
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert events.count("content_block_start") == events.count("content_block_stop") == 1


async def test_nothing_allowed_to_sample_is_a_400_in_each_protocol(http):
    # Seed 8's script says "no token is allowed" at once: the fake's stand-in for logit_bias banning
    # all that a grammar allows.
    r = await http.post("/v1/chat/completions", json=chat(8))
    assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias"
    r = await http.post("/v1/messages", json={"model": "f", "max_tokens": 5, "top_k": 8,
                                              "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "logit_bias" in r.json()["error"]["message"]


async def test_a_failure_mid_stream_ends_it_with_the_protocols_error_event(http):
    r = await http.post("/v1/chat/completions", json=chat(9, stream=True))
    chunks = sse_data(r.text)
    assert chunks[-1]["error"]["param"] == "logit_bias" and "[DONE]" not in r.text
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "ab"
    r = await http.post("/v1/messages", json={"model": "f", "max_tokens": 5, "top_k": 9, "stream": True,
                                              "messages": [{"role": "user", "content": "hi"}]})
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[-1] == "error" and "message_stop" not in events
    assert json.loads(r.text.splitlines()[-2][6:])["error"]["type"] == "invalid_request_error"


async def test_context_overflow_and_unknown_models_use_the_error_table(http):
    r = await http.post("/v1/chat/completions", json={"model": "f", "messages": [{"role": "user", "content": "y" * 99}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    r = await http.post("/v1/messages", json={"model": "nope", "max_tokens": 5,
                                              "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


@pytest.fixture
def slow(monkeypatch):
    monkeypatch.setenv("FAKE_DELAY", "0.02")  # 20 ms a token, so a request is still running when killed


@pytest.mark.parametrize("http", [ProcessLauncher()], indirect=True)
async def test_a_crashed_worker_ends_the_stream_with_model_crashed_and_health_recovers(slow, http):
    pid = (await http.get("/stats")).json()["fake"]["pid"]
    # (ASGITransport hands over a response only once it is complete: the kill comes from here.)
    streaming = asyncio.create_task(http.post("/v1/chat/completions", json=chat(10, stream=True)))
    while (await http.get("/stats")).json()["fake"]["generated_tokens"] < 3:
        await asyncio.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    chunks = sse_data((await streaming).text)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    error = chunks[-1]["error"]
    assert error["code"] == "model_crashed" and "SIGKILL" in error["message"]
    for _ in range(500):
        if (await http.get("/health")).status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert (await http.post("/v1/chat/completions", json=chat(1))).json()["choices"][0]["message"]["content"] == "abc"
    models = (await http.get("/v1/models")).json()["data"]
    assert models[0]["restarts"] == 1 and "SIGKILL" in models[0]["last_crash"]


async def test_a_prompt_list_the_engine_could_never_hold_is_a_400_not_an_endless_503(http):
    # Before: each prompt was submitted in turn until the queue was full, then 503 "overloaded",
    # which an SDK retries forever, and the prompts already queued were aborted.
    room = Settings().max_queue + spec().parallel
    r = await http.post("/v1/completions", json={"model": "f", "prompt": ["a"] * (room + 1), "max_tokens": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    assert str(room) in r.json()["error"]["message"]
    r = await http.post("/v1/completions", json={"model": "f", "prompt": ["a", "b"], "max_tokens": 2})
    assert r.status_code == 200
    assert http.registry.loaded("fake").stats().aborted == 0


async def test_a_client_gone_before_its_body_is_whole_is_no_server_error(http, caplog):
    # Before: starlette's ClientDisconnect escaped the body check: a 500 with a traceback in the
    # log and in ggserve_requests_total, which any client could inflate.
    app = http._transport.app
    messages = iter([{"type": "http.request", "body": b'{"model":', "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 1234), "server": ("test", 80)}
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = (await http.get("/metrics")).text
    assert 'status="500"' not in metrics and 'status="499"' in metrics


async def test_booleans_are_not_token_ids(http):
    r = await http.post("/v1/embeddings", json={"model": "f", "input": [True, False]})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("input")


async def test_an_item_reference_without_an_id_is_a_400(http):
    r = await http.post("/v1/responses", json={"model": "f", "input": [{"type": "item_reference"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].id"
