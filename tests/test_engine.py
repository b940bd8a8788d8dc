"""The engine's step loop over a fake backend: batching, stopping, aborts, slots."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine import ContextLengthExceeded, Engine, FinishReason, GenerateRequest, InvalidRequest, Message, SamplingParams
from engine.chat_template import ChatTemplate
from engine.config import ModelSpec, Source

from .fake_backend import FakeBackend

# A template that passes the user's text through, so the prompt's tokens are its bytes.
PLAIN = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def make_engine(backend: FakeBackend, n_ctx: int = 64) -> Engine:
    spec = ModelSpec(id="fake", source=Source(path="x"), n_ctx=n_ctx, parallel=backend.n_seq)
    return Engine(spec, backend, ChatTemplate(PLAIN))


def request(text: str = "hi", seed: int = 0, **kw) -> GenerateRequest:
    return GenerateRequest(messages=[Message("user", text)], sampling=SamplingParams(seed=seed), **kw)


async def run(engine: Engine, req: GenerateRequest) -> tuple[str, FinishReason, int]:
    gen = await engine.submit(req)
    text = ""
    async for delta in gen:
        text += delta.text
        if delta.finish_reason:
            return text, delta.finish_reason, delta.usage.completion_tokens
    raise AssertionError("no finish")


@pytest.fixture
def backend():
    return FakeBackend(scripts={1: b"abc", 2: b"hello STOP more", 3: b"0123456789"})


@pytest.fixture
def engine(backend):
    e = make_engine(backend)
    yield e
    e.close()


async def test_generates_until_eog_and_counts_every_sampled_token(engine):
    text, reason, n = await run(engine, request(seed=1))
    assert (text, reason, n) == ("abc", FinishReason.STOP, 4)  # a, b, c and the EOG token


async def test_max_tokens_ends_with_length(engine):
    text, reason, n = await run(engine, request(seed=3, max_tokens=4))
    assert (text, reason, n) == ("0123", FinishReason.LENGTH, 4)


async def test_stop_string_is_cut_and_ends_with_stop(engine):
    gen = await engine.submit(request(seed=2, stop=["nope", "STOP"]))
    deltas = [d async for d in gen]
    assert "".join(d.text for d in deltas) == "hello "
    assert (deltas[-1].finish_reason, deltas[-1].stop_sequence) == (FinishReason.STOP, "STOP")


async def test_count_tokens_matches_the_submitted_prompt(engine):
    req = request(text="count me")
    n = await engine.count_tokens(req)
    gen = await engine.submit(req)
    assert n == gen.prompt_tokens == len("count me")
    gen.close()


async def test_concurrent_requests_share_decode_steps(engine, backend):
    backend.gate = threading.Event()  # hold the worker so all four are queued before it goes on
    gens = [await engine.submit(request(seed=3)) for _ in range(4)]
    backend.gate.set()

    async def text_of(gen) -> str:
        return "".join([d.text async for d in gen])

    assert await asyncio.gather(*(text_of(g) for g in gens)) == ["0123456789"] * 4
    assert max(len(set(ids)) for ids in backend.decodes) == 4
    assert engine.stats().max_seqs_per_decode == 4


async def test_more_requests_than_slots_all_complete_and_slots_return(engine, backend):
    results = await asyncio.gather(*(run(engine, request(seed=1)) for _ in range(10)))
    assert [r[0] for r in results] == ["abc"] * 10
    stats = engine.stats()
    assert (stats.running, stats.waiting, stats.free_slots) == (0, 0, backend.n_seq)
    assert all(s.freed for s in backend.samplers)


async def test_long_prompt_is_prefilled_in_chunks_under_the_budget(engine, backend):
    await run(engine, request(text="x" * 40, seed=1))
    prefill_sizes = [len(ids) for ids in backend.decodes[:3]]
    assert prefill_sizes == [16, 16, 8]


async def test_prompt_that_does_not_fit_is_refused_before_queueing(engine):
    with pytest.raises(ContextLengthExceeded) as info:
        await engine.submit(request(text="y" * 64))
    assert (info.value.n_prompt, info.value.n_ctx) == (64, 64)
    assert engine.stats().waiting == 0


async def test_generation_stops_at_the_end_of_the_context(backend):
    engine = make_engine(backend, n_ctx=8)
    try:
        text, reason, n = await run(engine, request(text="abcde", seed=3))
        assert (text, reason, n) == ("012", FinishReason.LENGTH, 3)
    finally:
        engine.close()


async def test_abort_frees_the_slot_and_kv_cells(engine, backend):
    backend.scripts[4] = b"x" * 1000
    backend.gate = threading.Event()  # the worker waits inside sample() until released
    gen = await engine.submit(request(seed=4))
    while engine.stats().running == 0:
        await asyncio.sleep(0.01)
    removed_before = len(backend.removed)
    gen.close()
    backend.gate.set()
    for _ in range(200):
        if engine.stats().free_slots == backend.n_seq:
            break
        await asyncio.sleep(0.01)
    stats = engine.stats()
    assert (stats.running, stats.aborted, stats.free_slots) == (0, 1, backend.n_seq)
    assert stats.generated_tokens < 10, "the aborted sequence kept generating"
    assert len(backend.removed) == removed_before + 1, "the aborted sequence's KV cells were not removed"
    assert stats.cached_tokens == 0, "an aborted sequence must not be kept as a prefix cache"


async def test_decode_failure_fails_the_request_without_hanging(backend):
    backend.fail_decode = True
    engine = make_engine(backend)
    try:
        _, reason, _ = await asyncio.wait_for(run(engine, request(seed=1)), 5)
        assert reason is FinishReason.ERROR
        assert engine.stats().free_slots == backend.n_seq
    finally:
        engine.close()


async def test_repeated_prompt_reuses_the_cached_prefix(engine, backend):
    prompt = "a shared system prompt, then a question"
    *_, = await run(engine, request(text=prompt, seed=1))
    before = sum(len(ids) for ids in backend.decodes)
    gen = await engine.submit(request(text=prompt + " and more", seed=1))
    final = [d async for d in gen][-1]
    assert final.usage.cached_tokens == len(prompt)
    computed = sum(len(ids) for ids in backend.decodes) - before
    assert computed == len(" and more") + 3  # the new tail, then one decode per generated token but the last
    assert engine.stats().reused_tokens == len(prompt)


async def test_identical_prompt_still_computes_its_last_token(engine, backend):
    await run(engine, request(text="same", seed=1))
    gen = await engine.submit(request(text="same", seed=1))
    final = [d async for d in gen][-1]
    assert final.usage.cached_tokens == len("same") - 1


async def test_prefix_of_a_running_sequence_is_shared_not_recomputed(engine, backend):
    backend.scripts[5] = b"y" * 200
    backend.gate, backend.gated_seeds = threading.Event(), {5}  # seed 5 stalls in its first sample
    system = "You are helpful. " * 2
    long_running = await engine.submit(request(text=system + "first", seed=5))
    while engine.stats().prompt_tokens == 0:  # its prompt is in the KV cache now
        await asyncio.sleep(0.01)
    gen = await engine.submit(request(text=system + "second", seed=1))
    backend.gate.set()
    final = [d async for d in gen][-1]
    long_running.close()
    assert final.usage.cached_tokens == len(system)
    assert backend.copies and backend.copies[-1][2] == len(system)


async def test_logprob_tokens_concatenate_to_the_content_even_around_a_stop(engine, backend):
    backend.scripts[6] = "añb STOP x".encode()  # ñ is two bytes: two tokens, one character
    gen = await engine.submit(GenerateRequest(messages=[Message("user", "q")], sampling=SamplingParams(seed=6),
                                              stop=["b ST"], logprobs=2))
    deltas = [d async for d in gen]
    text = "".join(d.text for d in deltas)
    entries = [e for d in deltas for e in d.logprobs or []]
    assert text == "añ"
    assert "".join(e.token for e in entries) == text
    assert [e.bytes for e in entries[:3]] == [b"a", "ñ".encode()[:1], "ñ".encode()[1:]]
    assert all(len(e.top) == 2 for e in entries)


async def test_n_choices_prefill_once_and_copy_the_prompt(engine, backend):
    gen = await engine.submit(GenerateRequest(messages=[Message("user", "twelve chars")], n=3,
                                              sampling=SamplingParams(seed=1)))
    deltas = [d async for d in gen]
    finals = [d for d in deltas if d.finish_reason]
    assert sorted(d.choice for d in finals) == [0, 1, 2]
    # choice i samples with seed + i: the fake replays a different script for each
    assert ["".join(d.text for d in deltas if d.choice == i) for i in range(3)] == ["abc", "hello STOP more", "0123456789"]
    prompt_positions = sum(len(ids) for ids in backend.decodes[:1])
    assert prompt_positions == len("twelve chars")  # one prefill, not three
    assert len(backend.copies) == 2
    assert engine.stats().free_slots == backend.n_seq


async def test_n_larger_than_the_slots_is_refused(engine, backend):
    with pytest.raises(InvalidRequest):
        await engine.submit(GenerateRequest(messages=[Message("user", "x")], n=backend.n_seq + 1))


async def test_requests_arriving_together_compute_a_shared_prefix_once(backend):
    engine = make_engine(backend, n_ctx=256)
    try:
        backend.gate = threading.Event()  # queue all three before the worker looks
        system = "A long shared system prompt for every agent. " * 2  # 92 tokens: 6 prefill steps of 16
        gens = [await engine.submit(request(text=system + f"question {i}", seed=1)) for i in range(3)]
        backend.gate.set()
        finals = [[d async for d in g][-1] for g in gens]
        computed = engine.stats().prompt_tokens
        total = sum(f.usage.prompt_tokens for f in finals)
        assert computed < total - len(system)  # the shared part was not computed three times
        assert sum(f.usage.cached_tokens for f in finals) >= 2 * (len(system) - 16)
    finally:
        engine.close()


async def test_closing_the_engine_finishes_every_choice_of_a_queued_request(backend):
    engine = make_engine(backend)
    backend.gate = threading.Event()  # the worker holds the first request; the second queues
    first = await engine.submit(request(seed=1))
    queued = await engine.submit(GenerateRequest(messages=[Message("user", "x")], n=backend.n_seq))
    closer = asyncio.get_running_loop().run_in_executor(None, engine.close)
    backend.gate.set()
    await closer
    finals = [d async for d in queued if d.finish_reason]
    assert sorted(d.choice for d in finals) == list(range(backend.n_seq))
    first.close()
