"""Bad input gets OpenAI's error envelope with the right status, never FastAPI's 422."""

from __future__ import annotations

import httpx
import openai
import pytest

MODEL = "smollm2"
ASK = [{"role": "user", "content": "hi"}]


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize("kw, param", [
    ({"temperature": 5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"n": 9}, "n"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"abc": 5}}, "logit_bias"),
    ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"logit_bias": {"99999999": -100}}, "logit_bias"),
    ({"extra_body": {"audio": {"voice": "alloy", "format": "mp3"}}}, "audio"),
    ({"extra_body": {"modalities": ["text", "audio"]}}, "modalities"),
    ({"extra_body": {"prediction": {"type": "content", "content": "x"}}}, "prediction"),
    ({"extra_body": {"web_search_options": {}}}, "web_search_options"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_invalid_or_unsupported_parameters_are_400_naming_the_parameter(client, kw, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK, **kw)
    err = error_of(info.value)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param and param in err["message"]


def test_missing_messages_and_bad_role_are_400(server):
    for body in ({"model": MODEL}, {"model": MODEL, "messages": []},
                 {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}):
        r = httpx.post(f"{server.base_url}/v1/chat/completions", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_malformed_json_is_400(server):
    r = httpx.post(f"{server.base_url}/v1/chat/completions", content=b'{"model": "smollm2", "messages": [',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]


def test_image_part_on_a_text_model_is_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert error_of(info.value)["param"] == "messages[0].content[0]"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=ASK)
    err = error_of(info.value)
    assert (err["code"], err["param"]) == ("model_not_found", "model")


def test_prompt_longer_than_the_context_is_refused_before_any_token(client, server):
    def prompt_tokens(words: int) -> int:
        return client.chat.completions.create(model=MODEL, max_tokens=1, messages=[
            {"role": "user", "content": "word " * words}]).usage.prompt_tokens

    small, per_100 = prompt_tokens(100), prompt_tokens(200) - prompt_tokens(100)
    expected = small + 49 * per_100  # 5,000 words, counted the way the server counts
    before = server.wait_idle()["prompt_tokens"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 5000}], stream=True)
    err = error_of(info.value)
    assert err["code"] == "context_length_exceeded"
    assert "4096 tokens" in err["message"] and f"{expected} tokens" in err["message"]
    assert server.stats()["prompt_tokens"] == before


def test_unknown_route_is_404_in_the_envelope(server):
    r = httpx.get(f"{server.base_url}/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()
