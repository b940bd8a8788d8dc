"""Same request, same text (issue item 14). With the prefix cache, a prompt partly served from
cells another request computed gives other logits (llama.cpp rounds differently for other batch
shapes), so a greedy reply can change; `deterministic: true` trades the cache and cross-request
batching for replies that depend on nothing but the request."""

from __future__ import annotations

import concurrent.futures

import httpx

from .conftest import model, models_yaml, serve

SYSTEM = "You are a helpful assistant. " * 30


def ask(srv, model_id: str, question: str) -> str:
    r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=120, json={
        "model": model_id, "temperature": 0, "max_tokens": 60,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]})
    return r.json()["choices"][0]["message"]["content"]


def test_a_deterministic_model_answers_the_same_whatever_ran_before_or_beside(tmp_path):
    yaml_text = models_yaml(model("smollm2-135m", aliases="[smollm2]", n_ctx=1024, parallel=4),
                            model("exact", n_ctx=1024, parallel=4, deterministic="true", preload="true"),
                            default="smollm2-135m")
    with serve(tmp_path, yaml_text) as srv:
        alone = ask(srv, "exact", "Tell me about the moon.")
        ask(srv, "exact", "Tell me about the sun.")  # shares the long system prompt
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            beside = [pool.submit(ask, srv, "exact", q) for q in ("Tell me about stars.", "Tell me about the moon.",
                                                                   "Tell me about comets.")]
            again = beside[1].result()
        assert again == alone
        stats = httpx.get(f"{srv.base_url}/stats").json()["exact"]
        assert stats["reused_tokens"] == 0 and stats["max_seqs_per_decode"] == 1
