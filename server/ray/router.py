"""Prefix-affinity routing for the replicas' Ray Serve deployment.

A request whose prompt shares a long prefix with an earlier one (a system prompt, a conversation's
earlier turns, the same `prompt_cache_key`) goes to the replica that served that prefix, whose
prefix cache holds its KV cells, as long as that replica is not overloaded; otherwise to the
least-loaded replica. The ingress computes the prefix keys (`prefix_keys`) and passes them as the
`prefix` keyword of the replica call; this router, running inside the ingress's deployment handle,
reads them from the pending request."""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
from typing import Any

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from engine import GenerateRequest

log = logging.getLogger(__name__)

BLOCK_CHARS = 256  # prompt text per prefix key: about 64 tokens
MAX_KEYS = 200_000  # prefix keys remembered, least recently used dropped first
IMBALANCE = 4  # requests a preferred replica may have beyond the least-loaded one's
PLACED_WINDOW = 256  # new prefixes remembered for spreading the next ones


def prefix_keys(request: GenerateRequest) -> list[str]:
    """Chained hashes of the prompt's successive BLOCK_CHARS-character blocks: key i stands for
    the whole prefix up to block i, so two prompts share keys exactly as far as they agree."""
    if request.cache_key:
        return ["key:" + request.cache_key]
    text = _prompt_text(request)
    keys, h = [], hashlib.blake2b(digest_size=12)
    for end in range(BLOCK_CHARS, len(text) + 1, BLOCK_CHARS):
        h.update(text[end - BLOCK_CHARS:end].encode("utf-8", "surrogatepass"))
        keys.append(h.copy().hexdigest())
    return keys


def _prompt_text(request: GenerateRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    tools = "".join(f"{t.name}\x1f{t.description}\x1f{t.parameters}\x1e" for t in request.tools)
    turns = (f"{m.role}\x1f{m.content}\x1f{[(c.name, c.arguments) for c in m.tool_calls]}\x1e"
             for m in request.messages)
    return tools + "".join(turns)


class PrefixAffinityRouter(RequestRouter):
    """policy "prefix" (the default) or "round_robin" (to measure what affinity is worth).
    Without Ray's FIFOMixin: a replica chosen for a request goes to that request, not to
    whichever request waited longest."""

    def initialize_state(self, policy: str = "prefix", imbalance: int = IMBALANCE, **_: Any) -> None:
        self.policy = policy
        self.imbalance = imbalance
        self._owner: collections.OrderedDict[str, ReplicaID] = collections.OrderedDict()
        # Where the latest new prefixes (conversations, agents) went: they are spread evenly, as
        # each will come back with its later turns; a moment's queue lengths would not.
        # Keyed by request: Ray asks again for a request it could not send, which must not count twice.
        self._placed: collections.OrderedDict[str, ReplicaID] = collections.OrderedDict()
        self._turn = itertools.count()

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        by_id = {r.replica_id: r for r in candidate_replicas}
        kwargs = pending_request.kwargs if pending_request is not None else {}
        named = [r for r in candidate_replicas if r.replica_id.unique_id == kwargs.get("replica")]
        if named:  # a call for one replica (its stats)
            return [named]
        keys = kwargs.get("prefix") or []
        if self.policy == "round_robin":
            ordered = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
            chosen = ordered[next(self._turn) % len(ordered)]
        else:
            chosen = self._owner_of(keys, by_id)
            if chosen is None:
                chosen = self._least_loaded(candidate_replicas, count_placed=bool(keys))
                if keys:
                    self._place(pending_request, chosen)
            for key in keys:
                self._owner[key] = chosen.replica_id
                self._owner.move_to_end(key)
            while len(self._owner) > MAX_KEYS:
                self._owner.popitem(last=False)
        # The chosen replica alone, so the request goes where the keys now say it went: if it turns
        # out full, Ray asks again (with fresher queue lengths) rather than sending it elsewhere.
        return [[chosen]]

    def _place(self, pending_request: PendingRequest | None, chosen: RunningReplica) -> None:
        request_id = pending_request.metadata.internal_request_id if pending_request is not None else ""
        self._placed[request_id] = chosen.replica_id
        self._placed.move_to_end(request_id)
        while len(self._placed) > PLACED_WINDOW:
            self._placed.popitem(last=False)

    def _owner_of(self, keys: list[str], by_id: dict[ReplicaID, RunningReplica]) -> RunningReplica | None:
        """The replica that served the longest of these prefixes, unless it is overloaded."""
        least = min((self._load(r) for r in by_id.values()), default=0)
        for key in reversed(keys):
            owner = by_id.get(self._owner.get(key))
            if owner is not None:
                load = self._load(owner)
                if load < owner.max_ongoing_requests and load - least <= self.imbalance:
                    return owner
                return None
        return None

    def _least_loaded(self, replicas: list[RunningReplica], count_placed: bool) -> RunningReplica:
        """A replica with room: for a new prefix the one given the fewest new prefixes lately,
        else the shortest queue; ties go round in turn, so a burst spreads."""
        turn = next(self._turn)
        n = len(replicas)
        room = [(i, r) for i, r in enumerate(replicas) if self._load(r) < r.max_ongoing_requests] or \
            list(enumerate(replicas))

        def rank(ir: tuple[int, RunningReplica]) -> tuple[int, int, int]:
            placed = sum(1 for r in self._placed.values() if r == ir[1].replica_id) if count_placed else 0
            return placed, self._load(ir[1]), (ir[0] - turn) % n
        return min(room, key=rank)[1]

    def _load(self, replica: RunningReplica) -> int:
        return self.replica_queue_len_cache.get(replica.replica_id) or 0
