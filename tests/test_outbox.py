"""The step loop's outbox: which steps are sent at once, which are held, and how held text joins."""

from engine.messages import Step
from engine.outbox import Outbox, coalesce
from engine.types import Delta, EngineStats, FinishReason, TokenLogprob, ToolCallDelta, Usage


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def outbox(interval=0.05):
    sent: list[Step] = []
    clock = Clock()
    return Outbox(sent.append, interval, clock), sent, clock


def stats(steps):
    return EngineStats(steps=steps, running=1)


def texts(step):
    return [(rid, d.text) for rid, d in step.deltas]


def test_a_requests_first_delta_goes_at_once_then_text_waits_out_the_interval_and_goes_joined():
    box, sent, clock = outbox()
    box.put([(1, Delta(text="He"))], stats(1), idle=False)
    assert [texts(s) for s in sent] == [[(1, "He")]]
    for i, piece in enumerate(["ll", "o", ","], start=2):
        clock.now += 0.012
        box.put([(1, Delta(text=piece))], stats(i), idle=False)
    assert len(sent) == 1  # 36 ms since the last send
    clock.now += 0.015
    box.put([(1, Delta(text=" wo"))], stats(5), idle=False)
    assert [texts(s) for s in sent[1:]] == [[(1, "llo, wo")]]
    assert sent[1].stats == stats(5)


def test_a_final_delta_goes_at_once_with_what_was_held_before_it():
    box, sent, clock = outbox()
    box.put([(1, Delta(text="a"))], stats(1), idle=False)
    clock.now += 0.001
    box.put([(1, Delta(text="b"))], stats(2), idle=False)
    final = Delta(text="c", finish_reason=FinishReason.LENGTH, usage=Usage(completion_tokens=3))
    box.put([(1, final)], stats(3), idle=False)
    assert [texts(s) for s in sent] == [[(1, "a")], [(1, "b"), (1, "c")]]
    assert sent[-1].deltas[-1][1] is final


def test_a_new_request_beside_a_held_one_is_sent_at_once_and_takes_the_held_text_along():
    box, sent, clock = outbox()
    box.put([(1, Delta(text="a"))], stats(1), idle=False)
    clock.now += 0.001
    box.put([(1, Delta(text="b"))], stats(2), idle=False)
    box.put([(1, Delta(text="c")), (2, Delta(text="x"))], stats(3), idle=False)
    assert [texts(s) for s in sent] == [[(1, "a")], [(1, "bc"), (2, "x")]]


def test_nothing_is_held_once_the_loop_is_idle_and_nothing_unchanged_is_sent():
    box, sent, clock = outbox()
    box.put([(1, Delta(text="a"))], stats(1), idle=False)
    clock.now += 0.001
    box.put([(1, Delta(text="b"))], stats(2), idle=True)
    assert [texts(s) for s in sent] == [[(1, "a")], [(1, "b")]]
    clock.now += 1
    box.put([], stats(2), idle=True)
    assert len(sent) == 2
    box.put([], stats(3), idle=True)  # counters alone, once they change
    assert len(sent) == 3 and sent[-1].deltas == []


def test_interval_zero_sends_every_step():
    box, sent, clock = outbox(interval=0)
    for i in range(4):
        box.put([(1, Delta(text=str(i)))], stats(i), idle=False)
    assert [texts(s) for s in sent] == [[(1, "0")], [(1, "1")], [(1, "2")], [(1, "3")]]


def test_each_choices_first_text_and_a_first_answer_after_reasoning_go_at_once():
    box, sent, clock = outbox()
    box.put([(1, Delta(text="a", choice=0))], stats(1), idle=False)
    box.put([(1, Delta(text="b", choice=0)), (1, Delta(text="x", choice=1))], stats(2), idle=False)
    assert len(sent) == 2  # choice 1 began
    box.put([(1, Delta(text="y", choice=1))], stats(3), idle=False)
    assert len(sent) == 2
    box.put([(2, Delta(reasoning="hmm"))], stats(4), idle=False)
    box.put([(2, Delta(reasoning="m"))], stats(5), idle=False)
    assert len(sent) == 3
    box.put([(2, Delta(text="Yes"))], stats(6), idle=False)  # the answer a client shows begins
    assert len(sent) == 4 and [(d.reasoning, d.text) for _, d in sent[-1].deltas] == [("m", ""), ("", "Yes")]


def test_flush_sends_what_is_held_with_the_last_counters_sent():
    box, sent, clock = outbox()
    box.flush()
    assert sent == []
    box.put([(1, Delta(text="a"))], stats(1), idle=False)
    box.put([(1, Delta(text="b"))], stats(2), idle=False)
    box.flush()
    assert [texts(s) for s in sent] == [[(1, "a")], [(1, "b")]] and sent[1].stats == stats(1)
    box.flush()
    assert len(sent) == 2


def lp(token):
    return TokenLogprob(token, token.encode(), -0.5)


def test_coalesce_joins_runs_per_choice_and_keeps_each_tokens_logprob():
    deltas = [(1, Delta(text="a", logprobs=[lp("a")])), (2, Delta(text="x")),
              (1, Delta(text="b", logprobs=[lp("b")])), (2, Delta(text="y")),
              (1, Delta(text="c", choice=1, logprobs=[lp("c")]))]
    out = coalesce(deltas)
    assert [(rid, d.choice, d.text) for rid, d in out] == [(1, 0, "ab"), (2, 0, "xy"), (1, 1, "c")]
    assert [t.token for t in out[0][1].logprobs] == ["a", "b"]
    assert out[1][1].logprobs is None


def test_coalesce_keeps_tool_calls_finals_and_a_switch_from_reasoning_to_text_apart():
    call = Delta(tool_call=ToolCallDelta(index=0, id="call_1", name="f"))
    args = Delta(tool_call=ToolCallDelta(index=0, arguments='{"a":'))
    final = Delta(finish_reason=FinishReason.TOOL_CALLS, usage=Usage())
    deltas = [(1, Delta(reasoning="hm")), (1, Delta(reasoning="m")), (1, Delta(text="So")), (1, Delta(text="!")),
              (1, call), (1, args), (1, final)]
    out = [d for _, d in coalesce(deltas)]
    assert [(d.reasoning, d.text) for d in out[:2]] == [("hmm", ""), ("", "So!")]
    assert out[2:] == [call, args, final]


def test_what_a_request_reports_on_admission_waits_for_its_first_text():
    # a long prompt is prefilled over several steps: its first token must not wait out an interval
    box, sent, clock = outbox()
    box.put([(1, Delta(usage=Usage(prompt_tokens=900, cached_tokens=0)))], stats(1), idle=False)
    clock.now += 0.049
    box.put([], stats(2), idle=False)
    assert sent == []
    clock.now += 0.001
    box.put([(1, Delta(text="Hi"))], stats(3), idle=False)
    assert len(sent) == 1 and [d.text for _, d in sent[0].deltas] == ["", "Hi"]
    assert sent[0].deltas[0][1].usage.prompt_tokens == 900
