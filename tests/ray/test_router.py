"""The prefix-affinity router's choices (server/ray/router.py), without a cluster: stand-in
replicas with queue lengths the test sets."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

pytest.importorskip("ray")

from engine import GenerateRequest, Message  # noqa: E402
from server.ray.router import BLOCK_CHARS, PrefixAffinityRouter, prefix_keys  # noqa: E402


@dataclass(frozen=True)
class Rid:
    unique_id: str


@dataclass
class Replica:
    replica_id: Rid
    max_ongoing_requests: int = 8


@dataclass
class Metadata:
    internal_request_id: str


_ids = itertools.count()


@dataclass
class Pending:
    kwargs: dict = field(default_factory=dict)
    metadata: Metadata = field(default_factory=lambda: Metadata(f"r{next(_ids)}"))


class Queues(dict):
    def get(self, rid, default=None):
        return super().get(rid, default)


def router(policy: str = "prefix") -> PrefixAffinityRouter:
    r = PrefixAffinityRouter.__new__(PrefixAffinityRouter)
    r.initialize_state(policy=policy)
    r._replica_queue_len_cache = Queues()
    return r


def choose(r, replicas, keys=None, pending=None, **kw) -> str:
    ranks = asyncio.run(r.choose_replicas(replicas, pending or Pending({"prefix": keys or [], **kw})))
    assert len(ranks) == 1 and len(ranks[0]) == 1  # one replica: where the request is recorded to go
    return ranks[0][0].replica_id.unique_id


def chat(system: str, user: str) -> GenerateRequest:
    return GenerateRequest(messages=[Message("system", system), Message("user", user)])


def test_prompts_share_keys_exactly_as_far_as_their_text_agrees():
    system = "x" * (4 * BLOCK_CHARS)
    a, b = prefix_keys(chat(system, "first question")), prefix_keys(chat(system, "another one"))
    assert len(a) >= 4 and a[:4] == b[:4]
    other = prefix_keys(chat("y" + system[1:], "first question"))
    assert not set(other) & set(a)  # a different first block: nothing shared after it either
    assert prefix_keys(GenerateRequest(messages=[Message("user", "hi")], cache_key="k")) == ["key:k"]


def test_a_conversations_later_turns_follow_its_first_and_new_ones_spread_evenly():
    r, replicas = router(), [Replica(Rid("a")), Replica(Rid("b"))]
    first = {}
    for agent in range(8):
        r._replica_queue_len_cache[replicas[0].replica_id] = agent % 3  # queue lengths that wobble
        first[agent] = choose(r, replicas, [f"agent{agent}-{i}" for i in range(5)])
    assert sorted(first.values()).count("a") == 4  # even, whatever the momentary queues said
    for agent in range(8):  # the next turn: its earlier blocks plus new ones
        assert choose(r, replicas, [f"agent{agent}-{i}" for i in range(7)]) == first[agent]


def test_an_overloaded_owner_loses_its_affinity():
    r, replicas = router(), [Replica(Rid("a"), max_ongoing_requests=4), Replica(Rid("b"), max_ongoing_requests=4)]
    owner = choose(r, replicas, ["p1", "p2"])
    other = "b" if owner == "a" else "a"
    r._replica_queue_len_cache[Rid(owner)] = 4  # full
    assert choose(r, replicas, ["p1", "p2", "p3"]) == other


def test_round_robin_alternates_and_a_named_replica_is_chosen_alone():
    r, replicas = router("round_robin"), [Replica(Rid("a")), Replica(Rid("b"))]
    assert [choose(r, replicas, ["same"]) for _ in range(4)] == ["a", "b", "a", "b"]
    ranks = asyncio.run(r.choose_replicas(replicas, Pending({"replica": "b"})))
    assert [[x.replica_id.unique_id for x in rank] for rank in ranks] == [["b"]]


def test_asking_again_for_one_request_counts_it_once():
    r, replicas = router(), [Replica(Rid("a")), Replica(Rid("b"))]
    stuck = Pending({"prefix": ["s1"]})
    choose(r, replicas, pending=stuck)
    for _ in range(5):  # Ray re-asks while it cannot send it (its owner forgotten, as if full)
        r._owner.clear()
        choose(r, replicas, pending=stuck)
    assert len(r._placed) == 1
    assert choose(r, replicas, ["n1"]) != r._placed[stuck.metadata.internal_request_id].unique_id
