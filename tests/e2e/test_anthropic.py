"""/v1/messages and count_tokens through the official anthropic SDK, against the real model."""

from __future__ import annotations

import asyncio
import json
import uuid

import anthropic
import httpx
import pytest

MODEL = "smollm2"
MODEL_ID = "smollm2-135m"
ASK = [{"role": "user", "content": "Write three sentences about the sea."}]
# The 2026 SDK no longer types sampling parameters; the API (and ggserve) still takes them.
GREEDY = {"temperature": 0}


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_create_has_the_messages_shape(anthropic_client):
    m = anthropic_client.messages.create(model=MODEL, max_tokens=12, messages=ASK, extra_body=GREEDY)
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == MODEL_ID
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens") and m.stop_sequence is None
    assert 0 < m.usage.output_tokens <= 12
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens > 0


def test_client_configured_from_the_environment(server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "local-token")
    m = anthropic.Anthropic(max_retries=0).messages.create(model=MODEL, max_tokens=2, messages=ASK)
    assert m.usage.output_tokens == 2


def test_max_tokens_stop_reason(anthropic_client):
    m = anthropic_client.messages.create(model=MODEL, max_tokens=3, messages=ASK, extra_body=GREEDY)
    assert (m.stop_reason, m.usage.output_tokens) == ("max_tokens", 3)


def test_stop_sequences_end_with_stop_sequence(anthropic_client):
    baseline = text_of(anthropic_client.messages.create(model=MODEL, max_tokens=30, messages=ASK, extra_body=GREEDY))
    stop = baseline[12:18]
    m = anthropic_client.messages.create(model=MODEL, max_tokens=30, messages=ASK, extra_body=GREEDY,
                                         stop_sequences=["qqqq", stop])
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", stop)
    assert text_of(m) == baseline[: baseline.index(stop)]


def test_system_as_string_or_blocks_is_the_same_prompt(anthropic_client):
    system = "You answer in one short sentence."
    plain = anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=ASK, extra_body=GREEDY, system=system)
    blocks = anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=ASK, extra_body=GREEDY,
                                              system=[{"type": "text", "text": system}])
    total = lambda m: m.usage.input_tokens + m.usage.cache_read_input_tokens  # noqa: E731
    assert total(plain) == total(blocks)
    assert text_of(plain) == text_of(blocks)


def test_multi_turn_reuses_the_cached_conversation(anthropic_client):
    history = [{"role": "user", "content": f"Conversation {uuid.uuid4().hex}: name a color."}]
    first = anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=history, extra_body=GREEDY)
    history += [{"role": "assistant", "content": text_of(first) or "Blue."},
                {"role": "user", "content": [{"type": "text", "text": "And a fruit?"}]}]
    second = anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=history, extra_body=GREEDY)
    assert second.usage.cache_read_input_tokens > first.usage.input_tokens // 2
    assert second.content


def test_count_tokens_equals_what_messages_counts(anthropic_client):
    kw = dict(model=MODEL, system=f"Note {uuid.uuid4().hex}.", messages=ASK)
    counted = anthropic_client.messages.count_tokens(**kw).input_tokens
    m = anthropic_client.messages.create(max_tokens=1, **kw)
    assert counted == m.usage.input_tokens + m.usage.cache_read_input_tokens + m.usage.cache_creation_input_tokens
    assert m.usage.cache_read_input_tokens < counted  # the unique system prompt was computed, not cached


def test_stream_text_equals_the_final_message_and_the_non_streamed_one(anthropic_client):
    kw = dict(model=MODEL, max_tokens=20, messages=ASK, extra_body=GREEDY)
    # Both compared replies start with the prompt cached (README, "Reproducibility"): a cold
    # prefill rounds the last prompt token's logits differently, which flipped a near tie on AVX2.
    anthropic_client.messages.create(**{**kw, "max_tokens": 1})
    with anthropic_client.messages.stream(**kw) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text_of(final) == text_of(anthropic_client.messages.create(**kw))
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 20


def test_raw_stream_events_come_in_the_api_order(anthropic_client, server):
    events = list(anthropic_client.messages.create(model=MODEL, max_tokens=6, messages=ASK, extra_body=GREEDY, stream=True))
    kinds = [e.type for e in events if e.type != "ping"]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0].message.usage.input_tokens > 0
    delta = next(e for e in events if e.type == "message_delta")
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("max_tokens", 6)
    # Every SSE frame names its event, and the name matches the payload's type (comments aside:
    # they keep the connection alive while the request waits for a slot).
    body = {"model": MODEL, "max_tokens": 3, "messages": ASK, "stream": True}
    raw = httpx.post(f"{server.base_url}/v1/messages", json=body, timeout=60).text
    frames = [f for f in raw.split("\n\n") if f.strip() and not f.startswith(":")]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.split(": ", 1)[1] == json.loads(data_line.split(": ", 1)[1])["type"]


def test_inert_newer_fields_are_accepted(anthropic_client):
    m = anthropic_client.messages.create(
        model=MODEL, max_tokens=2, messages=ASK, service_tier="auto", speed="standard", inference_geo="us",
        cache_control={"type": "ephemeral"}, output_config={"effort": "low"}, thinking={"type": "disabled"},
        metadata={"user_id": "u-1"})
    assert m.usage.output_tokens == 2


def test_auth_and_version_headers_are_accepted(server):
    body = {"model": MODEL, "max_tokens": 1, "messages": ASK}
    headers = {"x-api-key": "k", "authorization": "Bearer k", "anthropic-version": "2023-06-01",
               "anthropic-beta": "tools-2024-04-04"}
    assert httpx.post(f"{server.base_url}/v1/messages", json=body, headers=headers, timeout=60).status_code == 200


def error_of(exc: anthropic.APIStatusError) -> dict:
    body = exc.response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return body["error"]


@pytest.mark.parametrize("kw, where", [
    ({"extra_body": {"temperature": 1.5}}, "temperature"),
    ({"extra_body": {"top_k": -1}}, "top_k"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "nonsense"}}}}, "output_config.format"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"extra_body": {"frobnicate": True}}, "frobnicate"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
    ({"tool_choice": {"type": "tool", "name": "missing"}, "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
     "missing"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}, "messages.0.content.0"),
])
def test_bad_requests_are_400_invalid_request_error(anthropic_client, kw, where):
    args = {"model": MODEL, "max_tokens": 5, "messages": ASK, **kw}
    with pytest.raises(anthropic.BadRequestError) as info:
        anthropic_client.messages.create(**args)
    err = error_of(info.value)
    assert err["type"] == "invalid_request_error" and where in err["message"]


def test_missing_max_tokens_and_malformed_json_are_400(server):
    r = httpx.post(f"{server.base_url}/v1/messages", json={"model": MODEL, "messages": ASK})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{server.base_url}/v1/messages", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "error"


def test_unknown_model_is_404_not_found_error(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as info:
        anthropic_client.messages.create(model="no-such-model", max_tokens=5, messages=ASK)
    assert error_of(info.value)["type"] == "not_found_error"


def test_prompt_longer_than_the_context_is_400(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as info:
        anthropic_client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "word " * 5000}])
    assert "maximum context length is 4096" in error_of(info.value)["message"]


async def test_anthropic_and_openai_streams_run_together(anthropic_aclient, aclient, server):
    before = server.wait_idle()

    async def anthropic_stream(i: int) -> str:
        async with anthropic_aclient.messages.stream(model=MODEL, max_tokens=24, extra_body={"temperature": 0.8},
                                                     messages=[{"role": "user", "content": f"Fact {i} about cats."}]) as s:
            return "".join([t async for t in s.text_stream])

    async def openai_stream(i: int) -> str:
        stream = await aclient.chat.completions.create(model=MODEL, max_tokens=24, temperature=0.8, stream=True,
                                                       messages=[{"role": "user", "content": f"Fact {i} about dogs."}])
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(anthropic_stream(i) for i in range(4)), *(openai_stream(i) for i in range(4)))
    assert all(texts)
    after = server.wait_idle()
    assert after["multi_seq_steps"] - before["multi_seq_steps"] >= 10
