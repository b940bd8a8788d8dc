"""Expressions to GBNF text, shaped for what llama.cpp's grammar parser can take.

llama.cpp (vendored in llama-cpp-python 0.3.36, src/llama-grammar.cpp) expands `x{m,n}` into m
copies of x and n-m generated rules, and refuses the grammar when, within one sequence,
(rules made by the repeated item) x (its repetition count) exceeds 2000, or when m > 2000; a max
above 2000 silently becomes unbounded. Its parser also recurses once per nested parenthesis. So:
  - a repetition operator only ever follows a literal, a character class or a rule name (anything
    else is moved to a rule of its own), which keeps that product at the count alone;
  - counts are capped at REPEAT_CAP (a max above it becomes unbounded, a min above it drops to
    it, unbounded: always a superset of what the schema allows), and all counts of one grammar
    share REPEAT_BUDGET, beyond which bounds are dropped, because each counted item becomes a
    rule that costs time every time a sampler is created;
  - parentheses nest at most MAX_NESTING deep; deeper groups become rules.
"""

from __future__ import annotations

from .ir import MAX_CODE_POINT, NEVER, Alt, Cls, Expr, Lit, Ranges, Ref, Rep, Seq, complement

REPEAT_CAP = 2000
REPEAT_BUDGET = 20_000
MAX_NESTING = 8

_LITERAL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CLASS_ESCAPES = {"\\": "\\\\", "]": "\\]", "[": "\\[", "-": "\\-", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
NEVER_TEXT = "[^\\x00-\\U%08X]" % MAX_CODE_POINT  # a class that matches no character


def _hex(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _plain(code: int) -> bool:
    # Control characters (NUL would end llama.cpp's C string), DEL and lone surrogates (not
    # encodable as UTF-8) are written as escapes; everything else as raw UTF-8.
    return code >= 0x20 and code != 0x7F and not 0xD800 <= code <= 0xDFFF


def literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly; characters outside the BMP stay whole."""
    out = []
    for c in text:
        out.append(_LITERAL_ESCAPES.get(c) or (c if _plain(ord(c)) else _hex(ord(c))))
    return '"' + "".join(out) + '"'


def _class_char(code: int) -> str:
    c = chr(code)
    if c in _CLASS_ESCAPES:
        return _CLASS_ESCAPES[c]
    return c if 0x20 <= code < 0x7F and c != "^" else _hex(code)


def char_class(ranges: Ranges) -> str:
    """`[...]` for the ranges, or `[^...]` of their complement when that is shorter."""
    negated = complement(ranges)
    if not negated:
        return "."
    body, prefix = (negated, "^") if len(negated) < len(ranges) else (ranges, "")
    parts = []
    for low, high in body:
        parts.append(_class_char(low) if low == high else
                     _class_char(low) + ("" if high == low + 1 else "-") + _class_char(high))
    return f"[{prefix}{''.join(parts)}]"


def _suffix(low: int, high: int | None) -> str:
    if (low, high) == (0, 1):
        return "?"
    if high is None:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


class RuleTable:
    """Rule names to GBNF bodies, in the order they were defined."""

    def __init__(self, reserved: set[str] = frozenset()) -> None:
        self.bodies: dict[str, str] = {}
        self.budget = REPEAT_BUDGET
        self._taken = set(reserved)
        self._hoisted: dict[Expr, str] = {}

    def fresh(self, hint: str) -> str:
        """An unused rule name like `hint` (GBNF names: letters, digits and '-')."""
        base = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in hint)[:60] or "r"
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}-{n}"
        self._taken.add(name)
        return name

    def define(self, name: str, expr: Expr) -> None:
        self._taken.add(name)
        self.bodies[name] = self._alternatives(expr, name, 0)

    def set_text(self, name: str, body: str) -> None:
        self._taken.add(name)
        self.bodies[name] = body

    def _alternatives(self, expr: Expr, owner: str, level: int) -> str:
        if expr == NEVER:
            return NEVER_TEXT
        if level == 0 and isinstance(expr, Rep) and (expr.min, expr.max) == (0, 1):
            # An optional rule body: an empty first alternative. (Never a trailing one: after
            # '|' llama.cpp skips newlines and would read on into the next rule.)
            return "| " + self._alternatives(expr.item, owner, level)
        if isinstance(expr, Alt):
            return " | ".join(self._sequence(item, owner, level) for item in expr.items)
        return self._sequence(expr, owner, level)

    def _sequence(self, expr: Expr, owner: str, level: int) -> str:
        if isinstance(expr, Seq):
            return " ".join(self._item(item, owner, level) for item in expr.items)
        return self._item(expr, owner, level)

    def _item(self, expr: Expr, owner: str, level: int) -> str:
        if isinstance(expr, Lit):
            return literal(expr.text)
        if isinstance(expr, Cls):
            return char_class(expr.ranges)
        if isinstance(expr, Ref):
            return expr.name
        if isinstance(expr, Rep):
            low, high = self._bounds(expr.min, expr.max)
            return self._atom(expr.item, owner) + _suffix(low, high)
        if expr == NEVER:
            return NEVER_TEXT
        if level >= MAX_NESTING:
            return self._hoist(expr, owner)
        return f"({self._alternatives(expr, owner, level + 1)})"

    def _atom(self, expr: Expr, owner: str) -> str:
        if isinstance(expr, (Cls, Ref)) or (isinstance(expr, Lit) and expr.text):
            return self._item(expr, owner, 0)
        return self._hoist(expr, owner)

    def _hoist(self, expr: Expr, owner: str) -> str:
        name = self._hoisted.get(expr)
        if name is None:
            name = self._hoisted[expr] = self.fresh(f"{owner}-part")
            self.define(name, expr)
        return name

    def _bounds(self, low: int, high: int | None) -> tuple[int, int | None]:
        if low > REPEAT_CAP:
            low, high = REPEAT_CAP, None
        if high is not None and high > REPEAT_CAP:
            high = None
        cost = low if high is None else high
        if cost > self.budget:  # this grammar has spent its repetitions: serve a superset
            low, high = min(low, 1), None
            cost = low
        self.budget -= cost
        return low, high
