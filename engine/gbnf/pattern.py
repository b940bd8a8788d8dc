"""JSON Schema `pattern` to a grammar expression over the JSON text of the string.

Python's own regex parser reads the pattern (one linear pass, and it already accepted the pattern
when the schema was checked); the tree is then converted node by node, so the work is linear in
the pattern. The pattern applies to the decoded string while the model writes JSON text, so every
character set is split into the characters written as themselves and those a JSON string must
escape (quote, backslash, controls), which are written as their escapes.

JSON Schema patterns follow ECMA-262: unanchored (a match anywhere in the string) unless `^`/`$`
say otherwise, and \\d \\w \\s are ASCII digits, ASCII word characters and ECMA whitespace.
What a grammar cannot express (lookarounds, backreferences, \\b, conditionals, anchors in the
middle) makes the caller fall back to any string: a superset.
"""

from __future__ import annotations

import logging
import re
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as sre  # type: ignore[attr-defined]

from .ir import (EMPTY, MAX_CODE_POINT, SURROGATES, Cls, Expr, Lit, Ranges, alt, chars, complement, intersect,
                 normalize, rep, seq, subtract)
from .json_rules import CHAR, json_text

log = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 5000  # longer patterns are served as any string
MAX_GROUP_DEPTH = 64  # deeper nesting is refused: Python's own regex compiler recurses on it

ALL: Ranges = ((0, MAX_CODE_POINT),)
DIGITS = chars("0123456789")
WORD = normalize([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
SPACES = normalize([*chars(" \t\n\v\f\r\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"), (0x2000, 0x200A)])
CATEGORIES = {
    C.CATEGORY_DIGIT: DIGITS, C.CATEGORY_NOT_DIGIT: complement(DIGITS),
    C.CATEGORY_WORD: WORD, C.CATEGORY_NOT_WORD: complement(WORD),
    C.CATEGORY_SPACE: SPACES, C.CATEGORY_NOT_SPACE: complement(SPACES),
}
HIGH_SURROGATES: Ranges = ((0xD800, 0xDBFF),)
LOW_SURROGATES: Ranges = ((0xDC00, 0xDFFF),)
MAX_PAIR_RANGES = 256  # character ranges one pair of surrogate sets may spell before "any string"
JSON_SPECIAL = normalize([(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])
STARTS = (C.AT_BEGINNING, C.AT_BEGINNING_STRING)
ENDS = (C.AT_END, C.AT_END_STRING)
REPEATS = tuple(getattr(C, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(C, name))
ATOMIC = getattr(C, "ATOMIC_GROUP", None)


class Unsupported(Exception):
    """The pattern uses something a grammar cannot express."""


class InvalidPattern(Exception):
    pass


def group_depth(pattern: str) -> int:
    """How deeply the pattern's parentheses nest (read without parsing it)."""
    depth = deepest = i = 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 2 if pattern[i + 1:i + 2] == "^" else 1
            continue  # a ']' right after '[' or '[^' is a plain character
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def pattern_body(pattern: str) -> Expr | None:
    """What may stand between the quotes of a JSON string matching `pattern`; None when only
    "any string" can be offered. Raises InvalidPattern for a pattern that is not a regex."""
    if group_depth(pattern) > MAX_GROUP_DEPTH:
        raise InvalidPattern(f"the pattern nests groups more than {MAX_GROUP_DEPTH} deep")
    try:
        re.compile(pattern)
        parsed = sre.parse(pattern)
    except (re.error, OverflowError, ValueError) as exc:
        raise InvalidPattern(f"invalid regular expression: {exc}") from exc
    except RecursionError as exc:
        raise InvalidPattern("the regular expression is too deeply nested") from exc
    if len(pattern) > MAX_PATTERN_CHARS:
        log.info("pattern of %d characters is served as any string", len(pattern))
        return None
    try:
        return _Converter(parsed.state.flags).top(list(parsed))
    except (Unsupported, RecursionError) as exc:
        log.info("pattern %r cannot be expressed in a grammar (%s); any string is allowed", pattern[:200], exc)
        return None


def json_chars(ranges: Ranges) -> Expr:
    """Characters of `ranges` as JSON string text: themselves, or their escapes. Surrogates are
    no characters of any string: a set of nothing else matches nothing."""
    ranges = subtract(ranges, SURROGATES)
    parts: list[Expr] = []
    plain = subtract(ranges, JSON_SPECIAL)
    if len(plain) == 1 and plain[0][0] == plain[0][1]:
        parts.append(Lit(chr(plain[0][0])))  # one character: a literal, which joins its neighbours
    elif plain:
        parts.append(Cls(plain))
    for low, high in intersect(ranges, JSON_SPECIAL):
        parts.extend(Lit(json_text(chr(code))[1:-1]) for code in range(low, high + 1))
    return alt(*parts)


class _Converter:
    def __init__(self, flags: int) -> None:
        self.flags = flags

    def top(self, items: list) -> Expr:
        # A group around the whole pattern, as in (^a|b$), holds the top-level branches.
        while len(items) == 1 and items[0][0] is C.SUBPATTERN and not items[0][1][1] and not items[0][1][2]:
            items = list(items[0][1][3])
        if len(items) == 1 and items[0][0] is C.BRANCH:
            return alt(*(self.branch(list(b)) for b in items[0][1][1]))
        return self.branch(items)

    def branch(self, items: list) -> Expr:
        start = end = False
        while items and items[0][0] is C.AT and items[0][1] in STARTS:
            items, start = items[1:], True
        while items and items[-1][0] is C.AT and items[-1][1] in ENDS:
            items, end = items[:-1], True
        if (start or end) and self.flags & re.MULTILINE:
            raise Unsupported("anchors in multi-line mode")
        anything = rep(CHAR, 0, None)
        return seq(EMPTY if start else anything, self.sequence(items, self.flags), EMPTY if end else anything)

    def sequence(self, items, flags: int) -> Expr:
        out, i = [], 0
        while i < len(items):
            astral = self.surrogate_pair(items[i], items[i + 1], flags) if i + 1 < len(items) else None
            out.append(json_chars(astral) if astral else self.node(*items[i], flags))
            i += 2 if astral else 1
        return seq(*out)

    def surrogate_pair(self, high_item, low_item, flags: int) -> Ranges | None:
        """The characters outside the BMP that a high-surrogate set followed by a low-surrogate set
        spells. JSON Schema patterns are ECMA-262's, read by UTF-16 units: "\\ud83d\\ude00" is
        one character there, two lone halves to Python's re."""
        high, low = self.char_set(high_item, flags), self.char_set(low_item, flags)
        if not high or not low or subtract(high, HIGH_SURROGATES) or subtract(low, LOW_SURROGATES):
            return None
        if low == LOW_SURROGATES:  # each high half: a run of 1,024 characters
            return normalize((_astral(a, 0xDC00), _astral(b, 0xDFFF)) for a, b in high)
        if sum(b - a + 1 for a, b in high) * len(low) > MAX_PAIR_RANGES:
            raise Unsupported("too many surrogate pairs")
        return normalize((_astral(h, a), _astral(h, b)) for lo, hi in high for h in range(lo, hi + 1) for a, b in low)

    def char_set(self, item, flags: int) -> Ranges | None:
        op, av = item
        if op is C.LITERAL:
            return self.literal(av, flags)
        return self.in_set(av, flags) if op is C.IN else None

    def node(self, op, av, flags: int) -> Expr:
        if op is C.LITERAL:
            return json_chars(self.literal(av, flags))
        if op is C.NOT_LITERAL:
            return json_chars(complement(self.literal(av, flags)))
        if op is C.ANY:
            return json_chars(ALL if flags & re.DOTALL else complement(chars("\n")))
        if op is C.IN:
            return json_chars(self.in_set(av, flags))
        if op is C.BRANCH:
            return alt(*(self.sequence(b, flags) for b in av[1]))
        if op is C.SUBPATTERN:
            _, add, remove, items = av
            return self.sequence(items, (flags | add) & ~remove)
        if op is ATOMIC:
            return self.sequence(av, flags)
        if op in REPEATS:
            low, high, items = av
            return rep(self.sequence(items, flags), low, None if high == C.MAXREPEAT else high)
        raise Unsupported(f"{str(op).lower()} is not expressible")

    def literal(self, code: int, flags: int) -> Ranges:
        return _fold(((code, code),)) if flags & re.IGNORECASE else ((code, code),)

    def in_set(self, items, flags: int) -> Ranges:
        ranges: list[tuple[int, int]] = []
        negate = False
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                ranges.append((av, av))
            elif op is C.RANGE:
                ranges.append(av)
            elif op is C.CATEGORY and av in CATEGORIES:
                ranges.extend(CATEGORIES[av])
            else:
                raise Unsupported(f"{str(op).lower()} in a character set")
        result = normalize(ranges)
        if flags & re.IGNORECASE:
            result = _fold(result)
        return complement(result) if negate else result


def _astral(high: int, low: int) -> int:
    return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)


def _fold(ranges: Ranges) -> Ranges:
    """Add the other case of every letter (ASCII exactly, other scripts for small ranges)."""
    extra: list[tuple[int, int]] = []
    for low, high in ranges:
        for a, b, shift in ((0x41, 0x5A, 32), (0x61, 0x7A, -32)):
            lo, hi = max(low, a), min(high, b)
            if lo <= hi:
                extra.append((lo + shift, hi + shift))
        if high >= 0x80 and high - low < 512:
            for code in range(max(low, 0x80), high + 1):
                for variant in {chr(code).lower(), chr(code).upper()}:
                    if len(variant) == 1:
                        extra.append((ord(variant), ord(variant)))
    return normalize([*ranges, *extra])
