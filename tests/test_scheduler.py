from engine.scheduler import schedule
from engine.sequence import Sequence, SeqState
from engine.stopping import StopMatcher
from engine.types import SamplingParams


def seq(i: int, state: SeqState, prompt_len: int = 10, n_past: int = 0) -> Sequence:
    return Sequence(id=i, prompt=list(range(prompt_len)), max_tokens=5, sampling=SamplingParams(),
                    stop=StopMatcher([]), state=state, n_past=n_past)


def test_decoders_first_then_prefill_chunks_within_budget():
    a, b = seq(1, SeqState.DECODE, n_past=10), seq(2, SeqState.DECODE, n_past=10)
    long_prompt = seq(3, SeqState.PREFILL, prompt_len=100)
    short_prompt = seq(4, SeqState.PREFILL, prompt_len=5)
    plan = schedule([long_prompt, a, short_prompt, b], budget=32)
    assert plan.decode == [a, b]
    assert plan.prefill == [(long_prompt, 30)]
    assert plan.n_tokens == 32


def test_remaining_budget_reaches_the_next_prompt():
    first = seq(1, SeqState.PREFILL, prompt_len=100, n_past=90)
    second = seq(2, SeqState.PREFILL, prompt_len=50)
    plan = schedule([first, second], budget=32)
    assert plan.prefill == [(first, 10), (second, 22)]


def test_nothing_to_do_is_an_empty_plan():
    assert not schedule([seq(1, SeqState.WAITING)], budget=8)


def test_the_batch_goes_in_slot_order_whatever_the_arrival_order():
    # llama.cpp's per-sequence KV streams put into one micro-batch only sequences whose ids
    # follow each other in batch order; arrival order (slots 5, 6, 7, 0, 1...) split a step in two.
    decoding = []
    for i, slot in enumerate([5, 6, 7, 0, 1]):
        s = seq(i, SeqState.DECODE, n_past=10 + i)
        s.slot, s.next_token = slot, 100 + slot
        decoding.append(s)
    prompt = seq(9, SeqState.PREFILL, prompt_len=4)
    prompt.slot = 3
    tokens, positions, slots, outputs = schedule([*decoding, prompt], budget=32).batch()
    assert slots == [0, 1, 3, 3, 3, 3, 5, 6, 7]
    assert tokens == [100, 101, 0, 1, 2, 3, 105, 106, 107]
    assert positions == [13, 14, 0, 1, 2, 3, 10, 11, 12]
    # each sequence samples from its own row: a decoding one at its token, a prompt at its last
    assert {s.slot: row for s, row in outputs} == {0: 0, 1: 1, 3: 5, 5: 6, 6: 7, 7: 8}
