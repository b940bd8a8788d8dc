"""Engine: one llama context, a worker thread, continuous batching of every request."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from .chat_template import ChatTemplate
from .config import ModelSpec
from .errors import ContextLengthExceeded, InvalidRequest, Overloaded
from .generation import Generation
from .scheduler import schedule
from .sequence import Sequence, SeqState
from .slots import SlotPool, common_prefix_len
from .stopping import StopMatcher
from .toolparser import ToolCallParser
from .reasoning import OPEN as OPEN_THINK
from .reasoning import ReasoningParser
from .tools import Grammar, Tooling
from .types import Delta, FinishReason, GenerateRequest, TopLogprob, Usage

log = logging.getLogger(__name__)

# Shorter shared prefixes are recomputed rather than waited for.
MIN_SHARED_PREFIX = 32


class BackendLike(Protocol):
    """What the engine needs from backend.Backend; unit tests supply a fake."""

    n_seq: int
    n_batch: int
    n_vocab: int

    def tokenize(self, text: str, add_special: bool) -> list[int]: ...
    def decode(self, tokens: list[int], positions: list[int], seq_ids: list[int], outputs: list[int]) -> int: ...
    def new_sampler(self, params: Any, grammar: Any = None) -> Any: ...
    def check_grammar(self, grammar: Any) -> None: ...
    def piece(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool: ...
    def copy_prefix(self, src: int, dst: int, n: int) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class EngineStats:
    steps: int = 0  # llama_decode calls
    max_seqs_per_decode: int = 0  # most distinct sequences in one llama_decode
    multi_seq_steps: int = 0  # decodes that carried two or more sequences
    decoded_tokens: int = 0  # tokens in all decodes (prompt chunks and generated): per step = this / steps
    running: int = 0  # sequences holding a slot
    waiting: int = 0  # accepted, waiting for a slot
    free_slots: int = 0
    kv_tokens: int = 0  # KV cells held by running sequences
    cached_tokens: int = 0  # KV cells kept in idle slots for prefix reuse
    reused_tokens: int = 0  # prompt tokens served from the cache since start
    prompt_tokens: int = 0  # prefilled since start
    generated_tokens: int = 0
    aborted: int = 0


class Engine:
    def __init__(self, spec: ModelSpec, backend: BackendLike, template: ChatTemplate, bos_text: str = "", adds_bos: bool = False):
        self.spec = spec
        self.backend = backend
        self.template = template
        self.tooling = Tooling.for_template(template.source)
        self.reasons = OPEN_THINK in template.source  # a reasoning model: split its thinking out
        self._bos_text = bos_text
        self._adds_bos = adds_bos
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._incoming: list[Sequence] = []
        self._aborts: set[int] = set()
        self._closing = False
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        self._slots = SlotPool(backend.n_seq, enabled=spec.prefix_cache)
        self._outbox: list[tuple[Any, Delta]] = []
        self._stats = EngineStats()
        self.max_queue = 64  # requests waiting for a slot; beyond it submit() refuses at once
        self._thread = threading.Thread(target=self._run, name=f"engine-{spec.id}", daemon=True)
        self._thread.start()

    # --- caller side (event loop) ------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.spec.n_ctx

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def render_prompt(self, request: GenerateRequest) -> str:
        if request.prompt is not None:
            return request.prompt
        messages, tools = self.tooling.prepare(request)
        return self.template.render(messages, tools, request.thinking)

    def tokenize_prompt(self, request: GenerateRequest, text: str | None = None) -> list[int]:
        """Render the chat template and tokenize; raises before anything is queued."""
        text = self.render_prompt(request) if text is None else text
        add_bos = self._adds_bos and not (self._bos_text and text.startswith(self._bos_text))
        return self.backend.tokenize(text, add_bos)

    def _prepare(self, request: GenerateRequest) -> tuple[list[int], Grammar | None, bool]:
        """Prompt tokens, the output grammar (checked to compile) and whether the prompt leaves the
        model inside a think block, before anything is queued."""
        grammar = self.tooling.grammar(request)
        if grammar is not None:
            self.backend.check_grammar(grammar)
        text = self.render_prompt(request)
        return self.tokenize_prompt(request, text), grammar, text.rstrip().endswith(OPEN_THINK)

    async def count_tokens(self, request: GenerateRequest) -> int:
        """The prompt's token count, exactly as submit() would count it."""
        return len(await asyncio.to_thread(self.tokenize_prompt, request))

    async def submit(self, request: GenerateRequest) -> Generation:
        """Validate and enqueue; the returned Generation yields Deltas as the worker makes them."""
        if request.max_tokens is not None and request.max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        if request.logprobs is not None and not 0 <= request.logprobs <= 20:
            raise InvalidRequest("top_logprobs must be between 0 and 20", param="top_logprobs")
        n_vocab = self.backend.n_vocab
        bad = [t for t in request.sampling.logit_bias if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequest(f"logit_bias: token id {bad[0]} is outside the vocabulary (0..{n_vocab - 1})",
                                 param="logit_bias")
        prompt, grammar, in_think = await asyncio.to_thread(self._prepare, request)
        if len(prompt) >= self.n_ctx:
            raise ContextLengthExceeded(len(prompt), self.n_ctx, request.max_tokens)
        room = self.n_ctx - len(prompt)
        max_tokens = min(request.max_tokens or room, room)
        if not 1 <= request.n <= self.backend.n_seq:
            raise InvalidRequest(f"n must be between 1 and {self.backend.n_seq} for this model", param="n")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta] = asyncio.Queue()
        seqs = [self._new_sequence(request, prompt, grammar, max_tokens, (loop, queue), i) for i in range(request.n)]
        if self.reasons and request.prompt is None:
            for seq in seqs:
                seq.thinker = ReasoningParser(in_think)
        seqs[0].followers = seqs[1:]
        with self._cond:
            if self._closing:  # stopping or crashed: a retryable 503, not the client's fault
                raise Overloaded(self.spec.id)
            # Requests not yet moved to a free slot are not queued: free slots count as room.
            if len(self._incoming) + len(self._waiting) >= self.max_queue + len(self._slots):
                raise Overloaded(self.spec.id, retry_after=1.0)  # refused now, not queued without end
            self._incoming.append(seqs[0])
            self._cond.notify()
        return Generation(self, [q.id for q in seqs], len(prompt), queue)

    def _new_sequence(self, request: GenerateRequest, prompt: list[int], grammar: Grammar | None,
                      max_tokens: int, sink: Any, choice: int) -> Sequence:
        sampling = request.sampling
        if choice and sampling.seed is not None:  # choice i of a seeded request is reproducible
            sampling = dataclasses.replace(sampling, seed=sampling.seed + choice)
        return Sequence(
            id=next(self._ids),
            prompt=prompt,
            max_tokens=max_tokens,
            sampling=sampling,
            stop=StopMatcher(request.stop),
            sink=sink,
            grammar=grammar,
            parser=ToolCallParser(self.tooling.fmt) if self.tooling.uses_tools(request) else None,
            logprobs=request.logprobs,
            choice=choice,
        )

    def abort(self, seq_ids: list[int]) -> None:
        with self._cond:
            self._aborts.update(seq_ids)
            self._cond.notify()

    def stats(self) -> EngineStats:
        with self._cond:
            s = self._stats
            return EngineStats(
                steps=s.steps, max_seqs_per_decode=s.max_seqs_per_decode, multi_seq_steps=s.multi_seq_steps,
                decoded_tokens=s.decoded_tokens,
                running=len(self._running), waiting=len(self._waiting) + len(self._incoming),
                free_slots=len(self._slots), kv_tokens=sum(q.n_past for q in self._running),
                cached_tokens=self._slots.cached_tokens, reused_tokens=s.reused_tokens,
                prompt_tokens=s.prompt_tokens, generated_tokens=s.generated_tokens, aborted=s.aborted,
            )

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.backend.close()

    # --- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        reason = FinishReason.ABORTED
        try:
            while self._wait_for_work():
                self._step()
                self._flush_outbox()
        except Exception:  # a bug or a fatal llama.cpp error: fail every request, never hang them
            log.exception("engine %s worker crashed", self.spec.id)
            reason = FinishReason.ERROR
        with self._cond:
            self._closing = True
            pending = [*self._running, *self._waiting, *self._incoming]
            self._running, self._incoming = [], []
            self._waiting.clear()
        for seq in pending:
            self._finish(seq, reason)
        self._flush_outbox()

    def _wait_for_work(self) -> bool:
        """Take new requests and aborts; block while there is nothing to do. False: shut down."""
        with self._cond:
            while not (self._incoming or self._aborts or self._running or self._waiting or self._closing):
                self._cond.wait()
            if self._closing:
                return False
            incoming, self._incoming = self._incoming, []
            aborts, self._aborts = self._aborts, set()
        self._waiting.extend(incoming)
        if aborts:
            self._apply_aborts(aborts)
        self._admit()
        self._flush_outbox()
        return True

    def _apply_aborts(self, ids: set[int]) -> None:
        for seq in [s for s in (*self._running, *self._waiting) if s.id in ids]:
            self._stats.aborted += 1
            self._finish(seq, FinishReason.ABORTED)

    def _admit(self) -> None:
        # A request with n choices is admitted whole: its followers need slots at once.
        deferred = []
        while self._waiting and len(self._slots) > len(self._waiting[0].followers):
            seq = self._waiting.popleft()
            if self._prefix_coming(seq):
                deferred.append(seq)
                continue
            live = {s.slot: s.kv_tokens() for s in self._running}
            seq.slot, reuse, source = self._slots.acquire(seq.prompt, live)
            reuse = self._reuse_prefix(seq.slot, source, reuse)
            seq.n_past = seq.n_cached = reuse
            self._stats.reused_tokens += reuse
            seq.sampler = self.backend.new_sampler(seq.sampling, seq.grammar)
            seq.state = SeqState.PREFILL
            self._running.append(seq)
            for follower in seq.followers:
                follower.slot = self._slots.acquire_empty()
                self.backend.remove_sequence(follower.slot)
                follower.sampler = self.backend.new_sampler(follower.sampling, follower.grammar)
                follower.state = SeqState.FOLLOW
                self._running.append(follower)
        self._waiting.extendleft(reversed(deferred))

    def _prefix_coming(self, seq: Sequence) -> bool:
        """Another request is still prefilling a long prefix this one shares (agents with one
        system prompt arriving together): wait until those cells exist and copy them, rather than
        computing the same prefix twice."""
        if not self._slots.enabled:
            return False
        return any(other.state is SeqState.PREFILL
                   and common_prefix_len(other.prompt, seq.prompt) >= other.n_past + MIN_SHARED_PREFIX
                   for other in self._running)

    def _reuse_prefix(self, slot: int, source: int, n: int) -> int:
        """Make `slot` hold the first n cells of `source` and nothing else; returns the cells kept."""
        if source == slot:
            if self.backend.remove_sequence(slot, n):
                return n
            n = 0  # this memory cannot drop a tail: start clean
        self.backend.remove_sequence(slot)
        if n > 0:
            self.backend.copy_prefix(source, slot, n)
        return n

    def _step(self) -> None:
        plan = schedule(self._running, self.backend.n_batch)
        if not plan:
            return
        tokens: list[int] = []
        positions: list[int] = []
        seq_ids: list[int] = []
        outputs: list[tuple[Sequence, int]] = []
        for seq in plan.decode:
            outputs.append((seq, len(tokens)))
            tokens.append(seq.next_token)
            positions.append(seq.n_past)
            seq_ids.append(seq.slot)
        for seq, n in plan.prefill:
            start = seq.n_past
            tokens.extend(seq.prompt[start:start + n])
            positions.extend(range(start, start + n))
            seq_ids.extend([seq.slot] * n)
            if n == seq.prompt_left:
                outputs.append((seq, len(tokens) - 1))
        status = self.backend.decode(tokens, positions, seq_ids, [i for _, i in outputs])
        n_seqs = len(plan.decode) + len(plan.prefill)
        with self._cond:
            self._stats.steps += 1
            self._stats.decoded_tokens += len(tokens)
            self._stats.max_seqs_per_decode = max(self._stats.max_seqs_per_decode, n_seqs)
            self._stats.multi_seq_steps += n_seqs > 1
        if status != 0:
            log.error("llama_decode failed with status %d for %d sequences", status, n_seqs)
            for seq in {*plan.decode, *(s for s, _ in plan.prefill)}:
                self._finish(seq, FinishReason.ERROR)
            return
        for seq in plan.decode:
            seq.n_past += 1
        for seq, n in plan.prefill:
            seq.n_past += n
            self._stats.prompt_tokens += n
        for seq, index in outputs:
            for follower in seq.followers:
                if follower.state is SeqState.FOLLOW:
                    self._start_follower(seq, follower, index)
            self._sample(seq, index)

    def _start_follower(self, leader: Sequence, follower: Sequence, index: int) -> None:
        """The leader's prompt is in the cache now: share its cells and draw this choice's first
        token from the same logits row, with the follower's own sampler."""
        self.backend.copy_prefix(leader.slot, follower.slot, len(leader.prompt))
        follower.n_past = len(leader.prompt)
        self._sample(follower, index)

    def _sample(self, seq: Sequence, index: int) -> None:
        token = seq.sampler.sample(index)
        seq.state = SeqState.DECODE
        self._stats.generated_tokens += 1
        logprob = None
        if seq.logprobs is not None:
            value, top = self.backend.logprobs(index, token, seq.logprobs)
            logprob = (value, [self._top_logprob(t, lp) for t, lp in top])
        deltas, reason = seq.accept(token, self.backend.piece(token), self.backend.is_eog(token), logprob)
        self._outbox.extend((seq.sink, delta) for delta in deltas)
        if reason is not None:
            self._finish(seq, reason)

    def _top_logprob(self, token: int, logprob: float) -> TopLogprob:
        piece = self.backend.piece(token)
        return TopLogprob(piece.decode("utf-8", errors="replace"), piece, logprob)

    def _finish(self, seq: Sequence, reason: FinishReason) -> None:
        if seq.state is SeqState.DONE:
            return
        if seq.slot >= 0:
            # A finished sequence's cells stay as a prefix cache; an aborted or failed one's go.
            keep = self._slots.enabled and reason in (FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS)
            if not keep:
                self.backend.remove_sequence(seq.slot)
            self._slots.release(seq.slot, seq.kv_tokens() if keep else [])
            seq.slot = -1
        if seq.sampler is not None:
            seq.sampler.free()
            seq.sampler = None
        if seq in self._running:
            self._running.remove(seq)
        if reason not in (FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS):
            for follower in seq.followers:  # never started: they go down with their leader
                if follower.state in (SeqState.WAITING, SeqState.FOLLOW):
                    self._finish(follower, reason)
        elif seq in self._waiting:
            self._waiting.remove(seq)
        seq.state = SeqState.DONE
        usage = Usage(prompt_tokens=len(seq.prompt), completion_tokens=seq.n_generated, cached_tokens=seq.n_cached,
                      reasoning_tokens=seq.n_reasoning)
        self._outbox.append((seq.sink, Delta(finish_reason=reason, usage=usage, stop_sequence=seq.stop.matched,
                                             choice=seq.choice)))

    def _flush_outbox(self) -> None:
        """Hand this step's deltas to their event loops: one wake-up per loop, not per token."""
        if not self._outbox:
            return
        by_loop: dict[Any, list[tuple[asyncio.Queue[Delta], Delta]]] = {}
        for (loop, queue), delta in self._outbox:
            by_loop.setdefault(loop, []).append((queue, delta))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed; nobody is listening any more
                pass


def _deliver(items: list[tuple[asyncio.Queue[Delta], Delta]]) -> None:
    for queue, delta in items:
        queue.put_nowait(delta)
