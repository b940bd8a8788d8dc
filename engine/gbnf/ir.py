"""Grammar expressions before they become GBNF text.

The converters build these trees rather than text so that repetition bounds can be capped in one
place (render.py), so that rules can be checked for left recursion before llama.cpp sees them
(analysis.py), and so that a repeated part that may be empty can be rewritten (`star_body`):
llama.cpp turns `x*` into `x' ::= x x' |`, which is left-recursive when x may match nothing.

Character sets are tuples of inclusive (low, high) code point ranges, sorted and disjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

MAX_CODE_POINT = 0x10FFFF
# UTF-16 halves: no text holds one alone, and a grammar that allowed one would make the model
# write bytes that are not UTF-8. Every character of JSON text is a code point outside this range.
SURROGATES = ((0xD800, 0xDFFF),)
Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Lit:
    text: str  # "" is the empty string


@dataclass(frozen=True, slots=True)
class Cls:
    ranges: Ranges  # never empty


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    items: tuple[Expr, ...]  # () matches nothing at all


@dataclass(frozen=True, slots=True)
class Rep:
    item: Expr
    min: int
    max: int | None  # None: unbounded


Expr = Union[Lit, Cls, Ref, Seq, Alt, Rep]
EMPTY = Lit("")
NEVER = Alt(())


def seq(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for item in items:
        parts = item.items if isinstance(item, Seq) else (item,)
        for part in parts:
            if part == NEVER:
                return NEVER
            if part == EMPTY:
                continue
            if isinstance(part, Lit) and flat and isinstance(flat[-1], Lit):
                flat[-1] = Lit(flat[-1].text + part.text)
            else:
                flat.append(part)
    if not flat:
        return EMPTY
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    flat: dict[Expr, None] = {}  # ordered, without repeats
    empty = False
    for item in items:
        for part in item.items if isinstance(item, Alt) else (item,):
            if part == EMPTY:
                empty = True
            else:
                flat[part] = None
    body = next(iter(flat)) if len(flat) == 1 else Alt(tuple(flat))
    if empty:  # an empty alternative is written as an optional group
        return opt(body) if flat else EMPTY
    return body


def rep(item: Expr, low: int, high: int | None) -> Expr:
    if high is not None and high < low:
        return NEVER
    if item == EMPTY or high == 0:
        return EMPTY
    if item == NEVER:
        return EMPTY if low == 0 else NEVER
    if low == high == 1:
        return item
    if high is None and nullable(item):
        # x{m,} with x matching "" is x*, and x* is (x without "")*: see star_body.
        body = star_body(item)
        return EMPTY if body == NEVER else Rep(body, 0, None)
    return Rep(item, low, high)


def opt(item: Expr) -> Expr:
    return rep(item, 0, 1)


def nullable(expr: Expr, rules: dict[str, bool] | None = None) -> bool:
    """Whether expr can match the empty string; a Ref asks `rules` (unknown names: no)."""
    if isinstance(expr, Lit):
        return expr.text == ""
    if isinstance(expr, Cls):
        return False
    if isinstance(expr, Ref):
        return bool(rules and rules.get(expr.name))
    if isinstance(expr, Seq):
        return all(nullable(item, rules) for item in expr.items)
    if isinstance(expr, Alt):
        return any(nullable(item, rules) for item in expr.items)
    return expr.min == 0 or nullable(expr.item, rules)


def star_body(expr: Expr) -> Expr:
    """A non-empty expression b with b* == expr*. For a sequence of parts that may each be empty,
    one round of the star can be any single part, so (a? b?)* == (a | b)*: linear, unlike the
    exact "expr minus the empty string"."""
    if not nullable(expr):
        return expr
    if isinstance(expr, Lit):
        return NEVER
    if isinstance(expr, (Seq, Alt)):
        return alt(*(star_body(item) for item in expr.items))
    assert isinstance(expr, Rep)
    return star_body(expr.item)


def refs(expr: Expr) -> list[str]:
    """Names referenced anywhere in expr."""
    if isinstance(expr, Ref):
        return [expr.name]
    if isinstance(expr, (Seq, Alt)):
        return [name for item in expr.items for name in refs(item)]
    if isinstance(expr, Rep):
        return refs(expr.item)
    return []


def first_refs(expr: Expr, rules: dict[str, bool]) -> list[str]:
    """Names llama.cpp's left-recursion check descends into: references in leftmost position,
    or behind parts that may match the empty string."""
    if isinstance(expr, Ref):
        return [expr.name]
    if isinstance(expr, Alt):
        return [name for item in expr.items for name in first_refs(item, rules)]
    if isinstance(expr, Rep):
        return first_refs(expr.item, rules)
    if isinstance(expr, Seq):
        found: list[str] = []
        for item in expr.items:
            found += first_refs(item, rules)
            if not nullable(item, rules):
                break
        return found
    return []


# --- character sets ------------------------------------------------------------------------------

def normalize(ranges) -> Ranges:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def complement(ranges: Ranges) -> Ranges:
    out, start = [], 0
    for low, high in ranges:
        if low > start:
            out.append((start, low - 1))
        start = high + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return tuple(out)


def subtract(ranges: Ranges, removed: Ranges) -> Ranges:
    return intersect(ranges, complement(removed))


def intersect(a: Ranges, b: Ranges) -> Ranges:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low <= high:
            out.append((low, high))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def chars(text: str) -> Ranges:
    return normalize((ord(c), ord(c)) for c in text)
