"""/v1/chat/completions through the official openai SDK, against the real default model."""

from __future__ import annotations

import openai
import pytest

MODEL = "smollm2"  # an alias; responses name the id that served it
MODEL_ID = "smollm2-135m"
ASK = [{"role": "user", "content": "Write three sentences about the sea."}]


def stream_text(client, **kw) -> tuple[list, str]:
    chunks = list(client.chat.completions.create(model=MODEL, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def test_non_stream_response_has_the_openai_shape_and_exact_usage(client):
    # The two compared replies start from the same server state: the prompt already cached. A cold
    # prefill rounds the last prompt token's logits differently (README, "Reproducibility"), and
    # on an AVX2 CPU that flipped a near tie.
    client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1, temperature=0)
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=12, temperature=0)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.created > 0
    assert r.model == MODEL_ID
    choice = r.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert 0 < u.completion_tokens <= 12
    again = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=12, temperature=0)
    assert again.usage.prompt_tokens == u.prompt_tokens
    assert again.choices[0].message.content == choice.message.content


def test_stream_starts_with_role_and_ends_with_finish_then_usage(client):
    chunks, text = stream_text(client, messages=ASK, max_tokens=10, temperature=0,
                               stream_options={"include_usage": True})
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "length"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])
    assert text


def test_stream_without_include_usage_sends_no_usage_chunk(client):
    chunks, _ = stream_text(client, messages=ASK, max_tokens=4, temperature=0)
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_streamed_text_equals_the_non_streamed_text(client):
    kw = dict(messages=ASK, max_tokens=24, temperature=0.9, seed=7)
    _, streamed = stream_text(client, **kw)
    whole = client.chat.completions.create(model=MODEL, **kw).choices[0].message.content
    assert streamed == whole


def test_same_seed_same_text_and_different_seeds_differ(client):
    def sample(seed):
        return client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=24, temperature=1.0,
                                              seed=seed).choices[0].message.content
    first = sample(1234)
    assert sample(1234) == first
    assert len({first, sample(1), sample(2), sample(3)}) > 1


def test_max_tokens_gives_length_and_max_completion_tokens_wins(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3, temperature=0)
    assert (r.choices[0].finish_reason, r.usage.completion_tokens) == ("length", 3)
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3, max_completion_tokens=5, temperature=0)
    assert (r.choices[0].finish_reason, r.usage.completion_tokens) == ("length", 5)


def test_stop_string_spanning_tokens_is_cut_and_never_streamed(client):
    # Learn the greedy continuation token by token (from the logprobs: a stream's chunk may carry
    # several tokens), then stop on a string that starts inside one token's text and ends inside
    # a later one.
    chunks, baseline = stream_text(client, messages=ASK, max_tokens=30, temperature=0, logprobs=True)
    pieces = [t.token for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(pieces) > 8 and "".join(pieces) == baseline
    start = len("".join(pieces[:4])) + len(pieces[4]) // 2
    end = len("".join(pieces[:7])) - 1
    stop = baseline[start:end]
    assert len(stop) >= 3 and baseline.index(stop) == start

    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0, stop=[stop, "zzzz"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == baseline[: baseline.index(stop)]

    chunks, streamed = stream_text(client, messages=ASK, max_tokens=30, temperature=0, stop=stop)
    assert streamed == baseline[: baseline.index(stop)]
    assert not any(stop in (c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_developer_role_and_system_prompt_are_accepted(client):
    r = client.chat.completions.create(
        model=MODEL, max_tokens=4, temperature=0, user="u-1", metadata={"team": "qa"},
        messages=[{"role": "developer", "content": "Answer briefly."}, *ASK])
    as_system = client.chat.completions.create(
        model=MODEL, max_tokens=4, temperature=0,
        messages=[{"role": "system", "content": "Answer briefly."}, *ASK])
    assert r.usage.prompt_tokens == as_system.usage.prompt_tokens
    assert r.choices[0].message.content == as_system.choices[0].message.content


def test_trailing_assistant_message_is_continued(client):
    closed = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1, temperature=0)
    prefix = "The sea is"
    r = client.chat.completions.create(
        model=MODEL, max_tokens=8, temperature=0, messages=[*ASK, {"role": "assistant", "content": prefix}])
    # The continued prompt is the open assistant turn plus the prefix's tokens, without an
    # end-of-turn marker: only a few tokens more than the bare generation prompt.
    extra = r.usage.prompt_tokens - closed.usage.prompt_tokens
    assert 1 <= extra <= 4
    assert r.choices[0].message.content


def test_text_content_parts_are_joined(client):
    as_parts = client.chat.completions.create(
        model=MODEL, max_tokens=4, temperature=0,
        messages=[{"role": "user", "content": [{"type": "text", "text": ASK[0]["content"]}]}])
    plain = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, temperature=0)
    assert as_parts.choices[0].message.content == plain.choices[0].message.content


def test_models_endpoints(client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL_ID, "smollm2-135m-embed"]
    card = client.models.retrieve(MODEL)
    assert card.id == MODEL_ID and card.object == "model" and card.owned_by
    assert card.model_extra["context_length"] == 4096
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
