"""allOf (and `$ref` with sibling keywords) as one schema.

The intersection is computed keyword by keyword where that is easy (object properties and
required names, types, numeric bounds, enums); any other keyword on which the parts disagree is
dropped, which can only widen what the grammar allows: a superset, never a refusal.
"""

from __future__ import annotations

from typing import Any, Callable

from .document import Path

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
    "$schema", "$id", "$anchor", "$dynamicAnchor", "$defs", "definitions", "$vocabulary",
    "contentMediaType", "contentEncoding", "contentSchema", "strict", "discriminator",
})
LOWER_BOUNDS = frozenset({"minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"})
UPPER_BOUNDS = frozenset({"maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"})
TYPES = ("null", "boolean", "object", "array", "number", "integer", "string")
Resolve = Callable[[str, Path], tuple[Path, Any]]


class _Never(Exception):
    """The parts contradict each other: no value satisfies all of them."""


def flatten(schema: dict, path: Path, resolve: Resolve, tick: Callable[[], None]) -> list[dict] | None:
    """The schema's own keywords, its $ref target's and its allOf parts', depth first, without
    recursion; None if one of them is `false`. A location met twice adds nothing (A and A is A),
    which also ends reference cycles."""
    parts: list[dict] = []
    stack: list[tuple[bool, Any]] = [(False, schema)]  # (ready to emit, schema)
    seen: set[Path] = set()
    while stack:
        ready, node = stack.pop()
        tick()
        if ready:
            parts.append(node)
            continue
        if node is True:
            continue
        if node is False or not isinstance(node, dict):
            return None
        stack.append((True, {k: v for k, v in node.items() if k not in ("$ref", "allOf")}))
        subs = node.get("allOf")
        stack.extend((False, sub) for sub in reversed(subs if isinstance(subs, list) else []))
        if isinstance(node.get("$ref"), str):
            target_path, target = resolve(node["$ref"], path)
            if target_path not in seen:
                seen.add(target_path)
                stack.append((False, target))
    return parts


def merge(parts: list[dict]) -> dict | None:
    """One schema that every instance of all parts satisfies (None: no instance can)."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    try:
        for part in parts:
            for key, value in part.items():
                if key in ANNOTATIONS or key in dropped:
                    continue
                if key not in out:
                    out[key] = value
                    continue
                combined = _combine(key, out[key], value)
                if combined is _DROP:
                    del out[key]
                    dropped.add(key)
                else:
                    out[key] = combined
    except _Never:
        return None
    return out


_DROP = object()


def _combine(key: str, a: Any, b: Any) -> Any:
    if a == b:
        return a
    if key == "properties" and isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{name: {"allOf": [a[name], s]} if name in a else s for name, s in b.items()}}
    if key == "required" and isinstance(a, list) and isinstance(b, list):
        return a + [name for name in b if name not in a]
    if key == "type":
        return _types(a, b)
    if key in LOWER_BOUNDS and _numbers(a, b):
        return max(a, b)
    if key in UPPER_BOUNDS and _numbers(a, b):
        return min(a, b)
    if key == "additionalProperties" or key == "items":
        if a is False or b is False:
            return False
        return b if a is True else a if b is True else {"allOf": [a, b]}
    if key == "enum" and isinstance(a, list) and isinstance(b, list):
        both = [value for value in a if value in b]
        if not both:
            raise _Never()
        return both
    return _DROP


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))


def _types(a: Any, b: Any) -> Any:
    sets = []
    for t in (a, b):
        names = {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set(TYPES)
        if "number" in names:
            names.add("integer")
        sets.append(names)
    both = sets[0] & sets[1]
    if "number" in both:  # both parts allow any number; integers are among them
        both.discard("integer")
    if not both:
        raise _Never()
    return [t for t in TYPES if t in both]
