"""Stored responses, for GET / DELETE / input_items and previous_response_id: bounded by count,
by bytes and by time since last use, least recently used out first."""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field

from engine import Message


@dataclass
class Stored:
    response: dict
    input_items: list[dict]  # this request's own input, ids minted where the client sent none
    history: list[Message]  # the conversation through this response's output (no instructions)
    size: int = 0
    at: float = field(default_factory=time.monotonic)


ITEM_OVERHEAD = 600  # bytes a small item costs in memory beyond its JSON text (dicts, strings)


def size_of(entry: Stored) -> int:
    text = sum(len(m.content) + len(m.reasoning) + sum(len(c.arguments) for c in m.tool_calls) for m in entry.history)
    n_items = len(entry.input_items) + len(entry.response["output"]) + len(entry.history)
    return len(json.dumps(entry.response)) + len(json.dumps(entry.input_items)) + text + ITEM_OVERHEAD * n_items


def items_of(entry: Stored) -> list[dict]:
    return [*entry.input_items, *entry.response["output"]]


class ResponseStore:
    def __init__(self, max_items: int = 1000, max_bytes: int = 256 << 20, ttl_s: float = 86400.0):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._entries: collections.OrderedDict[str, Stored] = collections.OrderedDict()
        self._items: dict[str, tuple[str, dict]] = {}  # item id -> (its response's id, the item)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: Stored) -> None:
        entry.size = size_of(entry)
        if entry.size > self.max_bytes:
            return  # larger than the whole store: not kept (a later GET answers 404)
        self.delete(entry.response["id"])
        self._entries[entry.response["id"]] = entry
        self.bytes += entry.size
        for item in items_of(entry):
            if isinstance(item.get("id"), str):
                self._items[item["id"]] = (entry.response["id"], item)
        self._expire()
        while len(self._entries) > self.max_items or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def get(self, response_id: str) -> Stored | None:
        self._expire()
        entry = self._entries.get(response_id)
        if entry is not None:  # the TTL runs from the last use, so the oldest use is always first
            entry.at = time.monotonic()
            self._entries.move_to_end(response_id)
        return entry

    def delete(self, response_id: str) -> bool:
        if response_id not in self._entries:
            return False
        self._drop(response_id)
        return True

    def item(self, item_id: str) -> dict | None:
        """An input or output item of any stored response (the latest to hold that id), for
        item_reference."""
        self._expire()
        found = self._items.get(item_id)
        return found[1] if found is not None else None

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        while self._entries and next(iter(self._entries.values())).at < cutoff:
            self._drop(next(iter(self._entries)))

    def _drop(self, response_id: str) -> None:
        entry = self._entries.pop(response_id)
        self.bytes -= entry.size
        for item in items_of(entry):
            key = item.get("id")
            if isinstance(key, str) and self._items.get(key, ("",))[0] == response_id:
                del self._items[key]
