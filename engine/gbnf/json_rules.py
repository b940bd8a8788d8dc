"""The rules every JSON grammar shares: whitespace, strings, numbers, formats, any value.

Each value rule ends with `space`, the only place whitespace may appear besides after `{`, `[`,
`,` and `:`. Whitespace and digit counts are bounded so that a small model cannot run on forever
inside a number or between two tokens.
"""

from __future__ import annotations

import json
import re

from .ir import EMPTY, MAX_CODE_POINT, SURROGATES, Cls, Expr, Lit, Ref, alt, chars, opt, rep, seq

SPACE = Ref("space")
DIGIT = Cls(((0x30, 0x39),))
NONZERO = Cls(((0x31, 0x39),))
HEX = Cls(chars("0123456789abcdefABCDEF"))
# Enough for any 64-bit integer, and for the fraction digits of the shortest round-trip form of
# any double (Python and JavaScript write up to 23); more would only let a model babble digits.
MAX_INTEGRAL_DIGITS = 19
MAX_FRACTION_DIGITS = 24
MAX_EXPONENT_DIGITS = 3

# A JSON string character: anything but '"', '\' and control characters, or an escape. A
# surrogate pair is one character of the decoded string, so it counts as one against maxLength.
PLAIN_CHAR = Cls(((0x20, 0x21), (0x23, 0x5B), (0x5D, SURROGATES[0][0] - 1), (SURROGATES[0][1] + 1, MAX_CODE_POINT)))
_SURROGATE_PAIR = seq(Lit("u"), Cls(chars("dD")), Cls(chars("89abAB")), rep(HEX, 2, 2),
                      Lit("\\u"), Cls(chars("dD")), Cls(chars("cdefCDEF")), rep(HEX, 2, 2))
ESCAPE = seq(Lit("\\"), alt(Cls(chars('"\\/bfnrt')), seq(Lit("u"), rep(HEX, 4, 4)), _SURROGATE_PAIR))
CHAR = Ref("json-char")
QUOTE = Lit('"')


def integer_range(first: int, last: int) -> Expr:
    """The JSON spellings of the integers first..last (no leading zeros, no "-0") in a few
    alternatives, however wide the range: each a fixed prefix, a digit from a run, then any digits."""
    parts = []
    if first < 0:
        parts.append(seq(Lit("-"), _natural_range(max(1, -last), -first)))
    if last >= 0:
        parts.append(_natural_range(max(0, first), last))
    return alt(*parts)


def _natural_range(a: int, b: int) -> Expr:
    """a..b (0 <= a <= b) as runs of blocks [head * 10^k, head * 10^k + 10^k - 1]: the head's
    spelling, then k digits that run over everything."""
    runs: list[list] = []  # [prefix, first digit, last digit, free digits]
    while a <= b:
        k = 0
        while a % 10 ** (k + 1) == 0 and a + 10 ** (k + 1) - 1 <= b and len(str(a + 10 ** (k + 1) - 1)) == len(str(a)):
            k += 1  # the block stays within one count of digits: 0..9, never 0..99
        head = str(a)[:len(str(a)) - k]  # "" only for the block 0..9
        run = runs[-1] if runs else None
        if head and run and run[3] == k and run[0] == head[:-1] and run[2] + 1 == int(head[-1]):
            run[2] += 1
        else:
            runs.append([head[:-1], int(head[-1]), int(head[-1]), k] if head else ["", 0, 9, k - 1])
        a += 10 ** k
    return alt(*(seq(Lit(prefix), Cls(((0x30 + lo, 0x30 + hi),)), rep(DIGIT, k, k)) for prefix, lo, hi, k in runs))


def _digits_after(first: Expr) -> Expr:
    return seq(first, rep(DIGIT, 0, MAX_INTEGRAL_DIGITS - 1))


def _integral(positive: bool) -> Expr:
    return _digits_after(NONZERO) if positive else alt(Lit("0"), _digits_after(NONZERO))


def _number(integer: bool, signed: bool, positive: bool = False) -> Expr:
    body = seq(opt(Lit("-")) if signed else EMPTY, _integral(positive))
    if not integer:
        fraction = seq(Lit("."), rep(DIGIT, 1, MAX_FRACTION_DIGITS))
        exponent = seq(Cls(chars("eE")), opt(Cls(chars("+-"))), rep(DIGIT, 1, MAX_EXPONENT_DIGITS))
        body = seq(body, opt(fraction), opt(exponent))
    return seq(body, SPACE)


def _date() -> Expr:
    month = alt(seq(Lit("0"), NONZERO), seq(Lit("1"), Cls(chars("012"))))
    day = alt(seq(Lit("0"), NONZERO), seq(Cls(chars("12")), DIGIT), seq(Lit("3"), Cls(chars("01"))))
    return seq(rep(DIGIT, 4, 4), Lit("-"), month, Lit("-"), day)


def _time() -> Expr:
    hour = alt(seq(Cls(chars("01")), DIGIT), seq(Lit("2"), Cls(chars("0123"))))
    minute = seq(Cls(chars("012345")), DIGIT)
    second = alt(minute, Lit("60"))  # RFC 3339 allows a leap second
    fraction = opt(seq(Lit("."), rep(DIGIT, 1, 9)))
    offset = alt(Cls(chars("zZ")), seq(Cls(chars("+-")), hour, Lit(":"), minute))
    return seq(hour, Lit(":"), minute, Lit(":"), second, fraction, offset)


def _uuid() -> Expr:
    groups = [rep(HEX, n, n) for n in (8, 4, 4, 4, 12)]
    return seq(groups[0], *(seq(Lit("-"), g) for g in groups[1:]))


def _value() -> Expr:
    words = seq(alt(Lit("true"), Lit("false"), Lit("null")), SPACE)
    return alt(Ref("json-object"), Ref("json-array"), Ref("json-string"), Ref("json-number"), words)


def _container(open_: str, item: Expr, close: str) -> Expr:
    items = seq(item, rep(seq(Lit(","), SPACE, item), 0, None))
    return seq(Lit(open_), SPACE, opt(items), Lit(close), SPACE)


SHARED: dict[str, Expr] = {
    # Indentation for pretty-printed JSON, but never whitespace without end.
    "space": alt(EMPTY, Lit(" "), seq(Lit("\n"), rep(Cls(chars(" \t")), 0, 20))),
    "json-char": alt(PLAIN_CHAR, ESCAPE),
    "json-string": seq(QUOTE, rep(CHAR, 0, None), QUOTE, SPACE),
    "json-number": _number(integer=False, signed=True),
    "json-number-unsigned": _number(integer=False, signed=False),
    "json-integer": _number(integer=True, signed=True),
    "json-integer-unsigned": _number(integer=True, signed=False),
    "json-integer-positive": _number(integer=True, signed=False, positive=True),
    "json-value": _value(),
    "json-object": _container("{", seq(Ref("json-string"), Lit(":"), SPACE, Ref("json-value")), "}"),
    "json-array": _container("[", Ref("json-value"), "]"),
    "json-date": _date(),
    "json-time": _time(),
    "json-date-time": seq(Ref("json-date"), Cls(chars("Tt ")), Ref("json-time")),
    "json-uuid": _uuid(),
}
FORMATS = {"date": "json-date", "time": "json-time", "date-time": "json-date-time", "uuid": "json-uuid"}

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value) -> str:
    """`value` as JSON text, with other characters than quote, backslash and controls left raw
    (so the grammar holds an emoji as itself, not as two surrogate escapes)."""
    text = json.dumps(value, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
