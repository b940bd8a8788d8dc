"""A model's worker dies (kill -9, a segfault, an abort): the requests it held end with a clear
error in their protocol's shape, other models keep serving, the worker comes back, and the server
says so in /health, /v1/models, /metrics and its log."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import anthropic
import httpx
import openai
import pytest

from .conftest import model, models_yaml, serve, wait_healthy

LONG = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    yaml_text = models_yaml(model("smollm2-135m", aliases="[smollm2]", n_ctx=1024, parallel=4),
                            model("other", n_ctx=1024, parallel=2, preload="true"), default="smollm2-135m")
    with serve(tmp_path_factory.mktemp("two"), yaml_text) as srv:
        yield srv


def worker_pid(srv, model_id: str = "smollm2-135m") -> int:
    return httpx.get(f"{srv.base_url}/stats").json()[model_id]["pid"]


def wait_running(srv, model_id: str = "smollm2-135m", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{srv.base_url}/stats").json().get(model_id, {}).get("running", 0) == 0:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.02)


def kill_and_recover(srv, sig: int) -> float:
    """Kill the default model's worker with `sig`; seconds until /health is 200 again."""
    pid = worker_pid(srv)
    os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while worker_pid_or_none(srv) == pid:  # until the server has noticed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    took = wait_healthy(srv)
    assert worker_pid(srv) != pid
    return took


def worker_pid_or_none(srv) -> int | None:
    return httpx.get(f"{srv.base_url}/stats").json().get("smollm2-135m", {}).get("pid")


def restarts_metric(srv) -> float:
    for line in httpx.get(f"{srv.base_url}/metrics").text.splitlines():
        if line.startswith('ggserve_model_restarts_total{model="smollm2-135m"}'):
            return float(line.split()[-1])
    raise AssertionError("no ggserve_model_restarts_total for the default model")


def test_kill_9_mid_stream_ends_the_stream_with_the_error_and_others_keep_serving(two):
    client = openai.OpenAI(base_url=f"{two.base_url}/v1", api_key="x", max_retries=0, timeout=120)
    before = restarts_metric(two)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        other = pool.submit(lambda: client.chat.completions.create(model="other", messages=LONG, max_tokens=120))
        stream = client.chat.completions.create(model="smollm2", messages=LONG, max_tokens=400, stream=True)
        chunks = iter(stream)
        next(chunks)
        pid = worker_pid(two)
        took = kill_and_recover(two, signal.SIGKILL)
        with pytest.raises(openai.APIError) as info:
            for _ in chunks:
                pass
        assert info.value.body["code"] == "model_crashed" and "smollm2-135m" in info.value.message
        assert "SIGKILL" in info.value.message
        assert other.result().choices[0].finish_reason in ("stop", "length")  # the other model never noticed
    assert took < 30
    assert restarts_metric(two) == before + 1
    card = client.models.retrieve("smollm2-135m").model_extra
    assert card["restarts"] >= 1 and "SIGKILL" in card["last_crash"]
    assert f"pid {pid}) was killed by signal SIGKILL" in two.log.read_text()
    assert client.chat.completions.create(model="smollm2", messages=LONG, max_tokens=3).usage.completion_tokens == 3


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_a_native_fault_mid_request_is_a_500_in_each_protocol(two, sig):
    oai = openai.OpenAI(base_url=f"{two.base_url}/v1", api_key="x", max_retries=0, timeout=120)
    claude = anthropic.Anthropic(base_url=two.base_url, api_key="x", max_retries=0, timeout=120)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a = pool.submit(lambda: oai.chat.completions.create(model="smollm2", messages=LONG, max_tokens=400))
        b = pool.submit(lambda: claude.messages.create(model="smollm2", messages=LONG, max_tokens=400))
        wait_running(two)
        time.sleep(0.3)
        kill_and_recover(two, sig)
        with pytest.raises(openai.InternalServerError) as oai_error:
            a.result()
        with pytest.raises(anthropic.InternalServerError) as claude_error:
            b.result()
    name = signal.Signals(sig).name
    assert oai_error.value.body["code"] == "model_crashed" and name in oai_error.value.body["message"]
    body = claude_error.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error" and name in body["error"]["message"]


def test_repeated_crashes_back_off_and_health_says_so(two):
    kill_and_recover(two, signal.SIGKILL)
    pid = worker_pid(two)
    os.kill(pid, signal.SIGKILL)  # again within a minute: the next start waits
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(f"{two.base_url}/health")
        if r.status_code == 503:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "SIGKILL" in r.json()["last_crash"]
    refused = httpx.post(f"{two.base_url}/v1/chat/completions", timeout=30,
                         json={"model": "smollm2", "messages": LONG, "max_tokens": 2})
    assert refused.status_code in (200, 503)  # 503 with Retry-After while it waits
    if refused.status_code == 503:
        assert refused.headers["retry-after"]
    assert wait_healthy(two) < 45


def test_an_unloaded_model_takes_its_process_with_it(tmp_path):
    yaml_text = models_yaml(model("smollm2-135m", aliases="[smollm2]", n_ctx=512),
                            model("brief", n_ctx=512, keep_alive=1), default="smollm2-135m")
    with serve(tmp_path, yaml_text) as srv:
        r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=60,
                       json={"model": "brief", "messages": LONG, "max_tokens": 2})
        assert r.status_code == 200
        pid = httpx.get(f"{srv.base_url}/stats").json()["brief"]["pid"]
        os.kill(pid, 0)  # running
        deadline = time.monotonic() + 20
        while "brief" in httpx.get(f"{srv.base_url}/stats").json():
            assert time.monotonic() < deadline, "never unloaded"
            time.sleep(0.1)
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
