"""Legacy /v1/completions and /v1/embeddings through the openai SDK."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

MODEL = "smollm2"
EMBED = "smollm2-135m-embed"


def test_completion_of_a_raw_prompt(client):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].text and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_list_of_prompts_with_n_gives_indexed_choices(client):
    r = client.completions.create(model=MODEL, prompt=["One, two,", "Red, green,"], n=2, max_tokens=4,
                                  temperature=1.0, seed=3)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    assert r.usage.completion_tokens <= 16 and all(c.text for c in r.choices)
    one = client.completions.create(model=MODEL, prompt="One, two,", max_tokens=1)
    two = client.completions.create(model=MODEL, prompt="Red, green,", max_tokens=1)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens + two.usage.prompt_tokens


def test_legacy_stream_echo_and_logprobs(client):
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0,
                                            stream=True, echo=True))
    text = "".join(c.choices[0].text for c in chunks)
    assert text.startswith("Once upon a time") and len(text) > len("Once upon a time")
    assert chunks[-1].choices[0].finish_reason == "length"
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0 and all(len(t) <= 2 for t in lp.top_logprobs)
    assert all(v <= 0 for v in lp.token_logprobs)


@pytest.mark.parametrize("kw, param", [({"suffix": "end"}, "suffix"), ({"best_of": 3}, "best_of"),
                                       ({"echo": True, "logprobs": 1}, "echo"), ({"prompt": [[1, 2]]}, "prompt")])
def test_unsupported_legacy_options_are_400(client, kw, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**({"model": MODEL, "prompt": "x", "max_tokens": 2} | kw))
    assert info.value.body["param"] == param


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_shape_usage_and_cosine_sanity(client):
    texts = ["The cat sat on the mat.", "A cat was sitting on a mat.", "Quarterly revenue rose by four percent."]
    r = client.embeddings.create(model=EMBED, input=texts)
    vecs = [d.embedding for d in sorted(r.data, key=lambda d: d.index)]
    assert len(vecs) == 3 and len({len(v) for v in vecs}) == 1 and len(vecs[0]) == 576
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3 for v in vecs)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 10
    assert cosine(vecs[0], vecs[1]) > cosine(vecs[0], vecs[2])
    assert cosine(vecs[0], vecs[0]) == pytest.approx(1.0, abs=1e-5)


def test_embeddings_base64_token_ids_and_determinism(client, server):
    floats = client.embeddings.create(model=EMBED, input="hello world", encoding_format="float").data[0].embedding
    raw = client.with_options().embeddings.with_raw_response.create(model=EMBED, input="hello world",
                                                                     encoding_format="base64").parse()
    packed = raw.data[0].embedding
    decoded = list(struct.unpack(f"<{len(floats)}f", base64.b64decode(packed))) if isinstance(packed, str) else packed
    assert decoded == pytest.approx(floats, abs=1e-6)
    by_ids = client.embeddings.create(model=EMBED, input=[[1, 2, 3, 4]]).data[0].embedding
    assert len(by_ids) == len(floats)


def test_embedding_errors(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input="x")
    assert "not marked for embeddings" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=EMBED, input="x", dimensions=64)
    assert info.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=EMBED, messages=[{"role": "user", "content": "x"}])
    assert "embedding model" in info.value.body["message"]


def test_legacy_stream_logprobs_match_the_whole_reply_while_stop_strings_hold_text_back(client):
    # Each stop string here begins with a common letter: whenever a token ends in one, its text
    # is held until the next token shows the stop string did not follow, so text lags its tokens.
    kw = dict(model=MODEL, prompt="Once upon a time", max_tokens=24, temperature=0, logprobs=1,
              stop=["e\x01", "a\x01", "o\x01", "t\x01"])
    whole = client.completions.create(**kw).choices[0]
    chunks = list(client.completions.create(stream=True, **kw))
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    offsets = [o for c in chunks if c.choices and c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.text
    assert tokens == whole.logprobs.tokens and len(tokens) > 8
    assert offsets == whole.logprobs.text_offset
