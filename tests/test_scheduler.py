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
