"""Which sequences wait, run and finish: the only place a sequence changes state or container."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .sequence import Sequence, SeqState
from .slots import SlotPool, common_prefix_len
from .speculation import Speculation
from .types import Delta, EngineStats, Failure, FinishReason, TopLogprob, Usage

# Shorter shared prefixes are recomputed rather than waited for.
MIN_SHARED_PREFIX = 32
# A sequence that ends this way leaves its KV cells behind as a prefix cache.
KEEPS_CACHE = (FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS)


@dataclass(slots=True)
class StepPlan:
    decode: list[Sequence] = field(default_factory=list)  # one token each
    prefill: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, prompt tokens)

    @property
    def n_tokens(self) -> int:
        return sum(1 + len(s.draft) for s in self.decode) + sum(n for _, n in self.prefill)

    @property
    def sequences(self) -> list[Sequence]:
        return [*self.decode, *(s for s, _ in self.prefill)]

    def __bool__(self) -> bool:
        return bool(self.decode or self.prefill)

    def batch(self) -> tuple[list[int], list[int], list[int], list[tuple[Sequence, int]]]:
        """(tokens, positions, slots) of one llama_decode, and which sequence samples from which
        batch row: every decoding sequence (its guesses, if any, in the rows after it), and each
        prefill whose prompt ends in this step.

        The sequences go in slot order. With a KV stream per sequence, llama.cpp puts into one
        micro-batch only sequences whose ids follow each other in batch order (split_equal's
        sequential rule) and runs the model once per micro-batch: eight decoding sequences in
        arrival order such as slots 5, 6, 7, 0, 1, 2, 3, 4 cost two passes over the weights
        instead of one (measured: 52 ms a step instead of 45 at c=8 on 2 CPU cores)."""
        # (slot, sequence, its tokens, first position, the row it samples from within them or None)
        parts = [(s.slot, s, [s.next_token, *s.draft], s.n_past, 0) for s in self.decode]
        parts += [(seq.slot, seq, seq.prompt[seq.n_past:seq.n_past + n], seq.n_past,
                   n - 1 if n == seq.prompt_left else None) for seq, n in self.prefill]
        parts.sort(key=lambda part: part[0])
        tokens: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        outputs: list[tuple[Sequence, int]] = []
        for slot, seq, toks, start, row in parts:
            if row is not None:
                outputs.append((seq, len(tokens) + row))
            tokens += toks
            positions += range(start, start + len(toks))
            slots += [slot] * len(toks)
        return tokens, positions, slots, outputs


def schedule(running: list[Sequence], budget: int) -> StepPlan:
    """Every decoding sequence gets its next token first, so streams never stall behind a long
    prompt; what is left of the token budget prefills waiting prompts in arrival order, in chunks."""
    plan = StepPlan()
    left = budget
    for seq in running:
        if seq.state is SeqState.DECODE and left > 0:
            del seq.draft[left - 1:]  # guesses only from the budget the others left
            plan.decode.append(seq)
            left -= 1 + len(seq.draft)
    for seq in running:
        if left <= 0:
            break
        if seq.state is SeqState.PREFILL:
            n = min(seq.prompt_left, left)
            plan.prefill.append((seq, n))
            left -= n
    return plan


class Scheduler:
    """Owns the waiting queue, the running list and the slots. Admission decides each sequence's
    slot and how much of its prompt the cache already holds; `finish` is the one way out."""

    def __init__(self, backend: Any, prefix_cache: bool = True, solo: bool = False, lookup_draft: int = 0,
                 drafter: Any = None):
        self.backend = backend  # KV operations and samplers (engine.core.BackendLike)
        # One sequence per decode step, in turn: llama.cpp's kernels round differently for other
        # batch shapes, so a sequence's logits then depend on nothing but its own tokens.
        self.solo = solo
        self._turn = 0
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []
        self.slots = SlotPool(backend.n_seq, enabled=prefix_cache)
        self.stats = EngineStats()
        self.speculation = Speculation(backend, lookup_draft, self.stats, drafter)
        self._by_rid: dict[int, list[Sequence]] = {}
        self._outbox: list[tuple[int, Delta]] = []

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def prefilling(self) -> bool:
        """The next step decodes prompt tokens: a running prompt's, or a waiting one's that can start."""
        return any(s.state is SeqState.PREFILL for s in self.running) or self._can_admit()

    def _can_admit(self) -> bool:
        # A request with n choices is admitted whole: its followers need slots at once.
        return bool(self.waiting) and len(self.slots) > len(self.waiting[0].followers)

    def add(self, seqs: list[Sequence]) -> None:
        """Queue one request: its first choice leads, the others follow its prompt."""
        seqs[0].followers = seqs[1:]
        self._by_rid[seqs[0].rid] = seqs
        self.waiting.append(seqs[0])

    def abort(self, rid: int) -> None:
        for seq in self._by_rid.get(rid, ()):
            if seq.state is not SeqState.DONE:
                self.stats.aborted += 1
                self.finish(seq, FinishReason.ABORTED)

    def plan(self) -> StepPlan:
        self.admit()
        running = self.running
        if self.solo and running:
            self._turn += 1
            running = [running[self._turn % len(running)]]
        self.speculation.guess(running)
        return schedule(running, self.backend.n_batch)

    # --- admission ---------------------------------------------------------------------------

    def admit(self) -> None:
        deferred = []
        while self._can_admit():
            seq = self.waiting.popleft()
            if self._prefix_coming(seq):
                deferred.append(seq)
                continue
            live = {s.slot: s.kv_tokens() for s in self.running}
            seq.slot, reuse, source = self.slots.acquire(seq.prompt, live)
            seq.n_past = seq.n_cached = reuse_prefix(self.backend, seq.slot, source, reuse)
            self.stats.reused_tokens += seq.n_cached
            # Admitted: the caller learns how much of the prompt the cache holds before any text.
            self._outbox.append((seq.rid, Delta(choice=seq.choice, usage=Usage(len(seq.prompt), 0, seq.n_cached))))
            self._start(seq, SeqState.PREFILL)
            for follower in seq.followers if seq.state is SeqState.PREFILL else ():
                follower.slot = self.slots.acquire_empty()
                self.backend.remove_sequence(follower.slot)
                self._start(follower, SeqState.FOLLOW)
        self.waiting.extendleft(reversed(deferred))

    def _start(self, seq: Sequence, state: SeqState) -> None:
        seq.state = state
        self.running.append(seq)
        try:
            seq.sampler = self.backend.new_sampler(seq.sampling, seq.grammar)
        except InvalidRequest as exc:  # checked when prepared; a failure here ends this request only
            self.finish(seq, FinishReason.ERROR, Failure("invalid_request", exc.message, exc.param))

    def _prefix_coming(self, seq: Sequence) -> bool:
        """Another request is still prefilling a long prefix this one shares (agents with one
        system prompt arriving together): wait until those cells exist and copy them, rather than
        computing the same prefix twice."""
        if not self.slots.enabled:
            return False
        return any(other.state is SeqState.PREFILL
                   and common_prefix_len(other.prompt, seq.prompt) >= other.n_past + MIN_SHARED_PREFIX
                   for other in self.running)

    # --- after a decode ----------------------------------------------------------------------

    def decoded(self, plan: StepPlan, n_tokens: int) -> None:
        """The plan's tokens are in the KV cache now."""
        s = self.stats
        n_seqs = len(plan.decode) + len(plan.prefill)
        s.steps += 1
        s.decoded_tokens += n_tokens
        s.max_seqs_per_decode = max(s.max_seqs_per_decode, n_seqs)
        s.multi_seq_steps += n_seqs > 1
        for seq in plan.decode:
            seq.n_past += 1  # next_token; each guess is counted once confirmed (confirmed())
            s.draft_tokens += len(seq.draft)
        for seq, n in plan.prefill:
            seq.n_past += n
            s.prompt_tokens += n

    def follow(self, leader: Sequence, follower: Sequence) -> None:
        """The leader's prompt is in the cache: the follower shares its cells and draws its first
        token from the same logits row."""
        self.backend.copy_prefix(leader.slot, follower.slot, len(leader.prompt))
        follower.n_past = len(leader.prompt)

    def take(self, seq: Sequence, token: int, piece: bytes, eog: bool,
             logprob: tuple[float, list[TopLogprob]] | None) -> None:
        """One sampled token for `seq`: its Deltas are queued, and it finishes if it ends here."""
        seq.state = SeqState.DECODE
        self.stats.generated_tokens += 1
        deltas, reason = seq.accept(token, piece, eog, logprob)
        self._outbox.extend((seq.rid, d) for d in deltas)
        if reason is not None:
            self.finish(seq, reason)

    def finish(self, seq: Sequence, reason: FinishReason, failure: Failure | None = None) -> None:
        if seq.state is SeqState.DONE:
            return
        if seq.slot >= 0:
            keep = self.slots.enabled and reason in KEEPS_CACHE
            if not keep:
                self.backend.remove_sequence(seq.slot)
            elif seq.draft:  # ended mid-verification: cells past what it kept held guesses
                self.backend.remove_sequence(seq.slot, seq.n_past)
            self.slots.release(seq.slot, seq.kv_tokens() if keep else [])
            seq.slot = -1
        if seq.sampler is not None:
            seq.sampler.free()
            seq.sampler = None
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        if reason not in KEEPS_CACHE:
            for follower in seq.followers:  # never started: they go down with their leader
                if follower.state in (SeqState.WAITING, SeqState.FOLLOW):
                    self.finish(follower, reason, failure)
        seq.state = SeqState.DONE
        self._outbox.append((seq.rid, Delta(finish_reason=reason, usage=spent(seq), stop_sequence=seq.stop.reported,
                                            choice=seq.choice, failure=failure)))
        if all(s.state is SeqState.DONE for s in self._by_rid.get(seq.rid, ())):
            self._by_rid.pop(seq.rid, None)

    def fail_all(self, failure: Failure) -> None:
        for seq in [*self.running, *self.waiting]:
            self.finish(seq, FinishReason.ERROR, failure)

    # --- what the worker publishes -----------------------------------------------------------

    def drain(self) -> list[tuple[int, Delta]]:
        out, self._outbox = self._outbox, []
        return out

    def snapshot(self) -> EngineStats:
        s = self.stats
        return EngineStats(
            steps=s.steps, max_seqs_per_decode=s.max_seqs_per_decode, multi_seq_steps=s.multi_seq_steps,
            decoded_tokens=s.decoded_tokens, running=len(self.running), waiting=len(self.waiting),
            free_slots=len(self.slots), kv_tokens=sum(q.n_past for q in self.running),
            cached_tokens=self.slots.cached_tokens, reused_tokens=s.reused_tokens, prompt_tokens=s.prompt_tokens,
            generated_tokens=s.generated_tokens, aborted=s.aborted, draft_tokens=s.draft_tokens,
            draft_accepted=s.draft_accepted,
        )


def reuse_prefix(backend: Any, slot: int, source: int, n: int) -> int:
    """Make `slot` hold the first n cells of `source` and nothing else; returns the cells kept."""
    if source == slot:
        if backend.remove_sequence(slot, n):
            return n
        n = 0  # this memory cannot drop a tail: start clean
    backend.remove_sequence(slot)
    if n > 0:
        backend.copy_prefix(source, slot, n)
    return n


def spent(seq: Sequence) -> Usage:
    """What the sequence cost, however it ended: the prompt tokens that reached the KV cache (all
    of them once it generated), and every sampled token."""
    prompt = len(seq.prompt) if seq.n_generated or seq.n_past >= len(seq.prompt) else seq.n_past
    return Usage(prompt_tokens=prompt, completion_tokens=seq.n_generated, cached_tokens=min(seq.n_cached, prompt),
                 reasoning_tokens=seq.n_reasoning)
