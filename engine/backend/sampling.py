"""Sampling with a grammar that can never abort llama.cpp.

llama_sampler_sample() applies a chain and then *accepts* the chosen token into it; a grammar that
receives a token it cannot take (or an end-of-generation token while it is incomplete) aborts the
whole process. So the grammar is kept out of the chain: the chain draws a token, the grammar checks
that one token, and a refused token is taken out of the row and the draw repeated (a few times;
then the grammar is applied to the full row, which costs about half a decode step on a CPU). A token reaches llama_sampler_accept only after the grammar allowed it, and a row in
which nothing is allowed is reported (None) instead of sampled.

Checking one token instead of the whole vocabulary is also what makes constrained decoding cheap.
For greedy decoding the result is exactly that of applying the grammar first; for sampling without
truncation, too (each redraw only removes refused tokens, so the allowed ones keep their odds, and
the fallback is exact); with
top_k / top_p / min_p the candidates are truncated before the grammar check, as in llama.cpp's own
common sampler.
"""

from __future__ import annotations

import ctypes
import math
import random
from typing import Callable

import llama_cpp as ll
import numpy as np

from ..errors import InvalidRequest
from ..types import SamplingParams

# Draws refused by the grammar before it is applied to the whole row instead.
REDRAWS = 3
# Tokens considered by repetition/frequency/presence penalties: llama.cpp's own default window.
PENALTY_LAST_N = 64
BAN = -100.0  # the OpenAI logit_bias value that means "never this token"
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert TOKEN_DATA.itemsize == ctypes.sizeof(ll.llama_token_data)


class Candidates:
    """A reusable llama_token_data_array over one logits row (the worker samples one sequence at
    a time, so one buffer serves them all)."""

    def __init__(self, ctx: ll.llama_context_p, n_vocab: int):
        self._ctx = ctx
        self._n = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self.data = np.zeros(n_vocab, TOKEN_DATA)
        self.array = ll.llama_token_data_array(
            data=self.data.ctypes.data_as(ll.llama_token_data_p), size=n_vocab, selected=-1, sorted=False)
        self.ref = ctypes.byref(self.array)
        self._one = np.zeros(1, TOKEN_DATA)
        self._one_array = ll.llama_token_data_array(
            data=self._one.ctypes.data_as(ll.llama_token_data_p), size=1, selected=-1, sorted=False)
        self._one_ref = ctypes.byref(self._one_array)

    def fill(self, row: int, without: list[int] | None = None) -> None:
        """The row's logits, in token order; tokens in `without` get -inf (refused by a grammar)."""
        logits = ll.llama_get_logits_ith(self._ctx, row)
        self.data["id"] = self._ids
        self.data["logit"] = np.ctypeslib.as_array(logits, shape=(self._n,))
        if without:
            self.data["logit"][without] = -np.inf
        self.data["p"] = 0.0
        self.array.size = self._n
        self.array.selected = -1
        self.array.sorted = False

    def argmax(self, row: int) -> tuple[int, float]:
        """The row's most likely token (the first of equals, as llama.cpp's greedy sampler picks)
        and its logit, read in place: no copy of the row."""
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self._ctx, row), shape=(self._n,))
        token = int(logits.argmax())
        return token, float(logits[token])

    def chosen(self) -> tuple[int, float]:
        entry = self.data[self.array.selected]
        return int(entry["id"]), float(entry["logit"])

    def any_allowed(self) -> bool:
        return bool(np.isfinite(self.data["logit"][: self.array.size]).any())

    def allows(self, sampler: ll.llama_sampler_p, token: int) -> bool:
        """Would `sampler` (a grammar) let `token` through? Only that one token is checked."""
        self._one[0] = (token, 0.0, 0.0)
        self._one_array.size = 1
        self._one_array.selected = -1
        ll.llama_sampler_apply(sampler, self._one_ref)
        return math.isfinite(float(self._one[0]["logit"]))


class Sampler:
    """One sequence's sampler chain and, apart from it, its grammar."""

    __slots__ = ("_chain", "_grammar", "_cand", "_is_eog", "_plain_greedy")

    def __init__(self, chain: ll.llama_sampler_p, grammar: ll.llama_sampler_p | None, candidates: Candidates,
                 is_eog, plain_greedy: bool = False):
        self._chain = chain
        self._grammar = grammar
        self._cand = candidates
        self._is_eog = is_eog
        # The chain is the greedy sampler alone (no bias, no penalties, no grammar): it keeps no
        # state, so its choice is the row's argmax, taken without copying the row into candidates.
        self._plain_greedy = plain_greedy and grammar is None

    def sample(self, row: int) -> int | None:
        """The next token from logits row `row`, accepted into the chain and the grammar; None when
        nothing may be sampled (logit_bias and the grammar together forbid every token)."""
        cand = self._cand
        if self._plain_greedy:
            token, logit = cand.argmax(row)
            if math.isfinite(logit):
                return token
            # a NaN or infinite logit (a broken model): the chain's own rules decide, as before
        cand.fill(row)
        ll.llama_sampler_apply(self._chain, cand.ref)
        token, logit = cand.chosen()
        if self._grammar is None:
            return self._accept(token, logit)
        refused: list[int] = []
        while math.isfinite(logit) and not cand.allows(self._grammar, token):
            refused.append(token)
            if len(refused) > REDRAWS:
                return self.sample_constrained(row)
            cand.fill(row, without=refused)
            ll.llama_sampler_apply(self._chain, cand.ref)
            token, logit = cand.chosen()
        return self._accept(token, logit) if math.isfinite(logit) else self.sample_constrained(row)

    def sample_constrained(self, row: int) -> int | None:
        """The grammar applied to the whole row first, then the chain's draw: what llama.cpp's own
        chain does, and what sample() falls back to when its draw is refused. For a token t the
        grammar allows, sample() draws it with p(t) + (1 - Z) p(t) / Z = p(t) / Z (Z: the allowed
        mass), the same distribution as this path (tests/test_sampling.py compares them)."""
        cand = self._cand
        cand.fill(row)
        if self._grammar is not None:
            ll.llama_sampler_apply(self._grammar, cand.ref)
            if not cand.any_allowed():
                return None
        ll.llama_sampler_apply(self._chain, cand.ref)
        return self._accept(*cand.chosen())

    def _accept(self, token: int, logit: float) -> int | None:
        if not math.isfinite(logit):
            return None
        ll.llama_sampler_accept(self._chain, token)
        if self._grammar is not None and not self._is_eog(token):  # the sequence ends on EOG
            ll.llama_sampler_accept(self._grammar, token)
        return token

    def free(self) -> None:
        if self._chain:
            ll.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar:
            ll.llama_sampler_free(self._grammar)
            self._grammar = None


def new_sampler(vocab: ll.llama_vocab_p, params: SamplingParams, gbnf: str | None, candidates: Candidates,
                is_eog: Callable[[int], bool]) -> Sampler:
    """A sampler chain (logit bias, penalties, truncation, temperature, the seeded draw) and the
    grammar beside it."""
    n_vocab = ll.llama_vocab_n_tokens(vocab)
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    add = ll.llama_sampler_chain_add
    if params.logit_bias:
        add(chain, _logit_bias(n_vocab, params.logit_bias))
    if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
        add(chain, ll.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, params.repetition_penalty,
                                                   params.frequency_penalty, params.presence_penalty))
    if params.temperature <= 0:
        add(chain, ll.llama_sampler_init_greedy())
    else:
        if params.top_k > 0:
            add(chain, ll.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(chain, ll.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0:
            add(chain, ll.llama_sampler_init_min_p(params.min_p, 1))
        add(chain, ll.llama_sampler_init_temp(params.temperature))
        add(chain, ll.llama_sampler_init_dist(_dist_seed(params.seed)))
    grammar = None
    if gbnf is not None:
        grammar = ll.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        if not grammar:
            ll.llama_sampler_free(chain)
            raise InvalidRequest("the output constraints could not be compiled into a grammar")
    # A bias or penalties add samplers before greedy's: a chain of one is greedy alone.
    plain_greedy = params.temperature <= 0 and ll.llama_sampler_chain_n(chain) == 1
    return Sampler(chain, grammar, candidates, is_eog, plain_greedy)


def check_grammar(vocab: ll.llama_vocab_p, gbnf: str) -> None:
    """Raise InvalidRequest if llama.cpp cannot parse the grammar."""
    grammar = ll.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not grammar:
        raise InvalidRequest("the output constraints could not be compiled into a grammar")
    ll.llama_sampler_free(grammar)


def _logit_bias(n_vocab: int, biases: dict[int, float]) -> ll.llama_sampler_p:
    entries = (ll.llama_logit_bias * len(biases))()
    for entry, (token, bias) in zip(entries, biases.items()):
        entry.token = token
        entry.bias = float("-inf") if bias <= BAN else bias  # -100 must ban, not just discourage
    return ll.llama_sampler_init_logit_bias(n_vocab, len(biases), entries)


def _dist_seed(seed: int | None) -> int:
    # llama.cpp reads 0xFFFFFFFF as "pick a random seed", so a user seed must never map to it.
    if seed is None:
        return random.getrandbits(31)
    value = seed & 0xFFFFFFFF
    return value if value != ll.LLAMA_DEFAULT_SEED else value - 1
