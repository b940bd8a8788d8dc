"""The engine's step loop (preparation, scheduler, core) over a fake backend, stepped by hand:
batching, stopping, aborts, slots and the prefix cache, with exact assertions."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from engine import ContextLengthExceeded, FinishReason, GenerateRequest, InvalidRequest, Message, SamplingParams
from engine.chat_template import ChatTemplate
from engine.config import ModelSpec, Source
from engine.core import EngineCore
from engine.prepare import Preparer
from engine.scheduler import Scheduler
from engine.types import Delta, Failure

from .fake_backend import BOS, NO_TOKEN, PLAIN, FakeBackend


class Harness:
    """A worker's engine without the worker: submit, then step until done."""

    def __init__(self, backend: FakeBackend, n_ctx: int = 64, prefix_cache: bool = True, stop: tuple = (),
                 lookup_draft: int = 0, max_tokens: int | None = None):
        spec = ModelSpec(id="fake", source=Source(path="x"), n_ctx=n_ctx, parallel=backend.n_seq,
                         n_batch=backend.n_batch, prefix_cache=prefix_cache, stop=stop, lookup_draft=lookup_draft,
                         max_tokens=max_tokens)
        self.backend = backend
        self.preparer = Preparer(spec, backend, ChatTemplate(PLAIN))
        self.scheduler = Scheduler(backend, prefix_cache=prefix_cache, lookup_draft=lookup_draft)
        self.core = EngineCore(backend, self.scheduler)
        self.deltas: dict[int, list[Delta]] = defaultdict(list)
        self._rids = itertools.count(1)

    def submit(self, req: GenerateRequest) -> int:
        rid = next(self._rids)
        self.scheduler.add(self.preparer.prepare(rid, req))
        return rid

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.core.step()
            for rid, delta in self.scheduler.drain():
                self.deltas[rid].append(delta)

    def run(self, limit: int = 10_000) -> None:
        while self.scheduler.busy and limit:
            self.step()
            limit -= 1
        assert not self.scheduler.busy, "the engine did not finish"

    def text(self, rid: int, choice: int = 0) -> str:
        return "".join(d.text for d in self.deltas[rid] if d.choice == choice)

    def final(self, rid: int, choice: int = 0) -> Delta:
        finals = [d for d in self.deltas[rid] if d.finish_reason is not None and d.choice == choice]
        assert len(finals) == 1, finals
        return finals[0]

    @property
    def stats(self):
        return self.scheduler.snapshot()


def request(text: str = "hi", seed: int = 0, **kw) -> GenerateRequest:
    return GenerateRequest(messages=[Message("user", text)], sampling=SamplingParams(seed=seed), **kw)


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def h(backend):
    return Harness(backend)


def test_generates_until_eog_and_counts_every_sampled_token(h):
    rid = h.submit(request(seed=1))
    h.run()
    final = h.final(rid)
    assert (h.text(rid), final.finish_reason, final.usage.completion_tokens) == ("abc", FinishReason.STOP, 4)


def test_max_tokens_ends_with_length(h):
    rid = h.submit(request(seed=3, max_tokens=4))
    h.run()
    assert (h.text(rid), h.final(rid).finish_reason) == ("0123", FinishReason.LENGTH)


def test_the_models_max_tokens_caps_a_request_that_sets_none(backend):
    h = Harness(backend, max_tokens=3)
    uncapped, capped = h.submit(request(seed=3)), h.submit(request(seed=3, max_tokens=5))
    h.run()
    assert (h.text(uncapped), h.final(uncapped).finish_reason) == ("012", FinishReason.LENGTH)
    assert (h.text(capped), h.final(capped).finish_reason) == ("01234", FinishReason.LENGTH)


def test_stop_string_is_cut_and_ends_with_stop(h):
    rid = h.submit(request(seed=2, stop=["nope", "STOP"]))
    h.run()
    assert h.text(rid) == "hello "
    assert (h.final(rid).finish_reason, h.final(rid).stop_sequence) == (FinishReason.STOP, "STOP")


def test_the_models_stop_strings_apply_beside_the_requests_own(backend):
    h = Harness(backend, stop=("lo",))
    rid = h.submit(request(seed=2, stop=["STOP"]))
    h.run()
    # The model's own stop ends the reply as an end-of-turn token would: not named to the client.
    assert (h.text(rid), h.final(rid).finish_reason, h.final(rid).stop_sequence) == ("hel", FinishReason.STOP, None)
    rid = h.submit(request(seed=2, stop=["lo"]))
    h.run()
    assert (h.text(rid), h.final(rid).stop_sequence) == ("hel", "lo")
    h = Harness(backend, stop=("zzz",))
    rid = h.submit(request(seed=2, stop=["STOP"]))
    h.run()
    assert (h.text(rid), h.final(rid).stop_sequence) == ("hello ", "STOP")


def test_count_tokens_matches_the_submitted_prompt(h):
    req = request(text="count me")
    rid = h.submit(req)
    h.run()
    assert h.preparer.count(req) == h.final(rid).usage.prompt_tokens == len("count me")


def test_concurrent_requests_share_decode_steps(h, backend):
    rids = [h.submit(request(seed=3)) for _ in range(4)]
    h.run()
    assert [h.text(r) for r in rids] == ["0123456789"] * 4
    assert max(len(set(ids)) for ids in backend.decodes) == 4
    assert h.stats.max_seqs_per_decode == 4


def test_more_requests_than_slots_all_complete_and_slots_return(h, backend):
    rids = [h.submit(request(seed=1)) for _ in range(10)]
    h.run()
    assert [h.text(r) for r in rids] == ["abc"] * 10
    stats = h.stats
    assert (stats.running, stats.waiting, stats.free_slots) == (0, 0, backend.n_seq)
    assert all(s.freed for s in backend.samplers)


def test_long_prompt_is_prefilled_in_chunks_under_the_budget(h, backend):
    h.submit(request(text="x" * 40, seed=1))
    h.run()
    assert [len(ids) for ids in backend.decodes[:3]] == [16, 16, 8]


def test_prompt_that_does_not_fit_is_refused_before_queueing(h):
    with pytest.raises(ContextLengthExceeded) as info:
        h.submit(request(text="y" * 64))
    assert (info.value.n_prompt, info.value.n_ctx) == (64, 64)
    assert h.stats.waiting == 0


def test_empty_prompt_is_the_bos_token_alone(h):
    # Regression: a 0-token prompt reached SlotPool.acquire, got a reuse of -1 and killed the engine.
    rid = h.submit(GenerateRequest(prompt="", sampling=SamplingParams(seed=1)))
    h.run()
    assert h.final(rid).usage.prompt_tokens == 1
    assert h.backend.decodes[0] == [0]  # one prompt position: BOS
    assert h.preparer.tokenize(GenerateRequest(prompt="")) == [BOS]


def test_generation_stops_at_the_end_of_the_context(backend):
    h = Harness(backend, n_ctx=8)
    rid = h.submit(request(text="abcde", seed=3))
    h.run()
    assert (h.text(rid), h.final(rid).finish_reason, h.final(rid).usage.completion_tokens) == \
        ("012", FinishReason.LENGTH, 3)


def test_abort_frees_the_slot_and_kv_cells_and_reports_what_was_spent(h, backend):
    rid = h.submit(request(text="twelve chars", seed=4))
    h.step(5)  # the prompt, then four tokens
    removed_before = len(backend.removed)
    h.scheduler.abort(rid)
    h.step()
    stats = h.stats
    assert (stats.running, stats.aborted, stats.free_slots) == (0, 1, backend.n_seq)
    assert len(backend.removed) == removed_before + 1, "the aborted sequence's KV cells were not removed"
    assert stats.cached_tokens == 0, "an aborted sequence must not be kept as a prefix cache"
    final = h.final(rid)
    # Regression: an aborted request was charged 0 tokens, a way around the token rate limit.
    assert final.finish_reason is FinishReason.ABORTED
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (len("twelve chars"), 5)


def test_an_aborted_queued_request_is_never_generated(backend):
    # Regression: a queued sequence that was aborted stayed in the waiting queue (Engine._finish)
    # and was later generated to max_tokens for nobody.
    h = Harness(backend)
    running = [h.submit(request(seed=1)) for _ in range(backend.n_seq)]
    queued = h.submit(request(seed=3))
    h.step()
    assert h.stats.waiting == 1
    h.scheduler.abort(queued)
    h.run()
    assert h.stats.generated_tokens == 4 * len(running)  # "abc" + EOG each, nothing for the aborted one
    assert (h.final(queued).finish_reason, h.final(queued).usage.completion_tokens) == (FinishReason.ABORTED, 0)
    assert h.text(queued) == ""


def test_decode_failure_fails_the_request_and_frees_its_slot(backend):
    backend.fail_decode = True
    h = Harness(backend)
    rid = h.submit(request(seed=1))
    h.run()
    assert h.final(rid).finish_reason is FinishReason.ERROR
    assert h.final(rid).failure.code == "decode_failed"
    assert h.stats.free_slots == backend.n_seq


def test_a_row_with_no_allowed_token_ends_cleanly(backend):
    # logit_bias that bans every token a grammar allows: the sampler reports nothing to sample.
    backend.scripts[7] = [ord("a"), NO_TOKEN]
    h = Harness(backend)
    rid = h.submit(request(seed=7))
    h.run()
    final = h.final(rid)
    assert final.finish_reason is FinishReason.ERROR
    assert (final.failure.code, final.failure.param) == ("invalid_request", "logit_bias")
    assert h.stats.free_slots == backend.n_seq


def test_repeated_prompt_reuses_the_cached_prefix(h, backend):
    prompt = "a shared system prompt, then a question"
    h.submit(request(text=prompt, seed=1))
    h.run()
    before = sum(len(ids) for ids in backend.decodes)
    rid = h.submit(request(text=prompt + " and more", seed=1))
    h.run()
    assert h.final(rid).usage.cached_tokens == len(prompt)
    computed = sum(len(ids) for ids in backend.decodes) - before
    assert computed == len(" and more") + 3  # the new tail, then one decode per generated token but the last
    assert h.stats.reused_tokens == len(prompt)


def test_identical_prompt_still_computes_its_last_token(h):
    h.submit(request(text="same", seed=1))
    h.run()
    rid = h.submit(request(text="same", seed=1))
    h.run()
    assert h.final(rid).usage.cached_tokens == len("same") - 1


def test_prefix_of_a_running_sequence_is_shared_not_recomputed(h, backend):
    system = "You are helpful. " * 2
    long_running = h.submit(request(text=system + "first", seed=5))
    h.step(4)  # its prompt is in the KV cache and it is generating
    rid = h.submit(request(text=system + "second", seed=1))
    h.step(6)
    h.scheduler.abort(long_running)
    h.run()
    assert h.final(rid).usage.cached_tokens == len(system)
    assert backend.copies and backend.copies[-1][2] == len(system)


def test_logprob_tokens_concatenate_to_the_content_even_around_a_stop(h, backend):
    backend.scripts[6] = "añb STOP x".encode()  # ñ is two bytes: two tokens, one character
    rid = h.submit(GenerateRequest(messages=[Message("user", "q")], sampling=SamplingParams(seed=6),
                                   stop=["b ST"], logprobs=2))
    h.run()
    deltas = h.deltas[rid]
    entries = [e for d in deltas for e in d.logprobs or []]
    assert h.text(rid) == "añ"
    assert "".join(e.token for e in entries) == "añ"
    assert [e.bytes for e in entries[:3]] == [b"a", "ñ".encode()[:1], "ñ".encode()[1:]]
    assert all(len(e.top) == 2 for e in entries)


def test_n_choices_prefill_once_and_copy_the_prompt(h, backend):
    rid = h.submit(GenerateRequest(messages=[Message("user", "twelve chars")], n=3, sampling=SamplingParams(seed=1)))
    h.run()
    assert sorted(d.choice for d in h.deltas[rid] if d.finish_reason) == [0, 1, 2]
    # choice i samples with seed + i: the fake replays a different script for each
    assert [h.text(rid, i) for i in range(3)] == ["abc", "hello STOP more", "0123456789"]
    assert len(backend.decodes[0]) == len("twelve chars")  # one prefill, not three
    assert len(backend.copies) == 2
    assert h.stats.free_slots == backend.n_seq


def test_n_larger_than_the_slots_is_refused(h, backend):
    with pytest.raises(InvalidRequest):
        h.submit(GenerateRequest(messages=[Message("user", "x")], n=backend.n_seq + 1))


def test_requests_arriving_together_compute_a_shared_prefix_once(backend):
    h = Harness(backend, n_ctx=256)
    system = "A long shared system prompt for every agent. " * 2  # 92 tokens: 6 prefill steps of 16
    rids = [h.submit(request(text=system + f"question {i}", seed=1)) for i in range(3)]
    h.run()
    finals = [h.final(r) for r in rids]
    total = sum(f.usage.prompt_tokens for f in finals)
    assert h.stats.prompt_tokens < total - len(system)  # the shared part was not computed three times
    assert sum(f.usage.cached_tokens for f in finals) >= 2 * (len(system) - 16)


def test_failing_all_finishes_every_choice_of_a_queued_request(h, backend):
    first = h.submit(request(seed=1))
    queued = h.submit(GenerateRequest(messages=[Message("user", "x")], n=backend.n_seq))
    h.step()
    h.scheduler.fail_all(Failure("model_unloaded", "gone"))
    h.step()
    assert sorted(d.choice for d in h.deltas[queued] if d.finish_reason) == list(range(backend.n_seq))
    assert h.final(first).finish_reason is FinishReason.ERROR
    assert not h.scheduler.busy


def test_a_stats_snapshot_is_not_changed_by_later_steps(h):
    # Regression: stats() read the worker's live containers without the lock the writers took.
    h.submit(request(seed=3))
    h.step()
    snapshot = h.stats
    h.run()
    assert snapshot.running == 1 and h.stats.running == 0


def test_a_deterministic_scheduler_decodes_one_sequence_per_step(backend):
    h = Harness(backend)
    h.scheduler = Scheduler(backend, prefix_cache=False, solo=True)
    h.core = EngineCore(backend, h.scheduler)
    rids = [h.submit(request(text="same prompt", seed=3)) for _ in range(3)]
    h.run()
    assert [h.text(r) for r in rids] == ["0123456789"] * 3
    assert max(len(set(ids)) for ids in backend.decodes) == 1
    assert [len(ids) for ids in backend.decodes].count(len("same prompt")) == 3  # each prefilled whole


def speculating(draft: int, stop=(), max_tokens=None) -> tuple[Harness, int]:
    backend = FakeBackend(n_batch=64, scripts={11: b"def f(x):\n    return x + 1\n# done"})
    h = Harness(backend, n_ctx=160, lookup_draft=draft)
    prompt = "Repeat: def f(x):\n    return x + 1\n"
    rid = h.submit(request(prompt, seed=11, stop=list(stop), max_tokens=max_tokens))
    h.run()
    return h, rid


@pytest.mark.parametrize("stop, max_tokens", [((), None), (("+ 1",), None), ((), 9)])
def test_prompt_lookup_guesses_give_the_same_reply_in_fewer_steps(stop, max_tokens):
    plain, rid = speculating(0, stop, max_tokens)
    fast, rid2 = speculating(4, stop, max_tokens)
    assert fast.text(rid2) == plain.text(rid) and fast.final(rid2) == plain.final(rid)
    stats = fast.scheduler.stats
    assert stats.draft_accepted > 3 and stats.steps < plain.scheduler.stats.steps
    assert plain.scheduler.stats.draft_tokens == 0


def test_refused_guesses_leave_no_cells_behind():
    h, rid = speculating(4)
    assert h.scheduler.stats.draft_tokens > h.scheduler.stats.draft_accepted  # some were refused
    assert h.backend.trims  # each step with guesses drops the cells from the first refused one on
    prompt_len = len("Repeat: def f(x):\n    return x + 1\n")
    assert all(prompt_len < pos <= prompt_len + 30 for _, pos in h.backend.trims)
    assert h.final(rid).usage.completion_tokens == len("def f(x):\n    return x + 1\n# done") + 1


def test_prefilling_says_when_the_next_step_decodes_prompt_tokens():
    # the worker sends what it holds before such a step: a prompt chunk can take far longer than
    # the streaming interval
    h = Harness(FakeBackend(n_seq=1, n_batch=4))
    assert not h.scheduler.prefilling
    first = h.submit(request(text="a long prompt", seed=1))
    assert h.scheduler.prefilling  # waiting, and a slot is free
    h.step()
    assert h.scheduler.prefilling  # its prompt takes several steps of 4 tokens
    while not h.deltas[first] or not h.text(first):
        h.step()
    assert not h.scheduler.prefilling  # decoding now
    h.submit(request(text="b", seed=2))
    assert not h.scheduler.prefilling  # waiting, but no slot is free
    h.run()
