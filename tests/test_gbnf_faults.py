"""Regression tests for the faults of the JSON Schema -> GBNF path that engine/gbnf replaced
(llama-cpp-python's converter): each schema here was refused, crashed the process, looped
forever, answered 500, or garbled the output before. Grammars are compiled, and texts run
through them, by the real llama.cpp in a child process (tests/gbnf_worker.py)."""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidRequest
from engine.gbnf import GrammarBuilder
from engine.gbnf.ir import SURROGATES, Alt, Cls, Lit, Rep, intersect
from engine.gbnf.json_rules import PLAIN_CHAR, integer_range
from engine.gbnf.pattern import pattern_body
from tests.gbnf_worker import grammar_of

PARAM = "response_format.json_schema.schema"


def compiles(worker, gbnf: str) -> bool:
    reply = worker.compile(gbnf)
    assert not reply.get("crashed"), "llama.cpp crashed on the grammar"
    return reply["ok"]


def finishes(fn, seconds: float = 10.0):
    """fn's result (or exception), failing the test instead of hanging it if fn runs on past
    `seconds`."""
    outcome: list = []

    def run():
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the test's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"did not finish within {seconds} s"
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def string(n: int) -> str:
    return json.dumps("x" * n)


# --- 1. repetition bounds: served, never refused, never a crash -----------------------------------

@pytest.mark.parametrize("n", [1000, 1500, 16000, 20000, 524288])
def test_a_long_max_length_is_served(worker, n):
    # Before: refused from ~1500 ("could not be compiled"), SIGSEGV in llama.cpp from ~20000.
    gbnf = grammar_of({"type": "string", "maxLength": n})
    assert compiles(worker, gbnf)
    exact = n <= 2000
    assert worker.accept(gbnf, [string(0), string(min(n, 2500)), string(2501) if not exact else string(n + 1)]) == \
        [True, True, not exact]


def test_a_min_length_above_the_cap_is_lowered_to_it(worker):
    gbnf = grammar_of({"type": "string", "minLength": 5000, "maxLength": 6000})
    assert worker.accept(gbnf, [string(5000), string(7000), string(2000), string(1999)]) == [True, True, True, False]


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": {"type": "string", "maxLength": 1999, "minLength": 1500}, "maxItems": 1999, "minItems": 1999},
    {"type": "array", "items": {"type": "array", "items": {"type": "string", "maxLength": 3000}, "maxItems": 3000},
     "minItems": 2500},
    {"type": "array", "prefixItems": [{"type": "string", "maxLength": 1800}] * 20, "maxItems": 1990},
    {"type": "string", "pattern": "^(a{0,1500}b){2,1999}$"},
    {"type": "string", "pattern": "^(?:(?:[a-z]{1,1800}-){1,1800}x){0,1800}$"},
    {"type": "string", "pattern": "^[a-z]{3000}$"},
    {"type": "string", "pattern": "^(ab{2,1000000})+$"},
    {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 1999} for i in range(40)},
     "required": [f"p{i}" for i in range(40)]},
])
def test_nested_and_many_repetitions_compile(worker, schema):
    assert compiles(worker, grammar_of(schema))


def test_nested_bounds_still_hold_below_the_cap(worker):
    gbnf = grammar_of({"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2})
    assert worker.accept(gbnf, ['["abc"]', '["a", "b"]', "[]", '["abcd"]', '["a", "b", "c"]']) == \
        [True, True, False, False, False]


# --- 2. patterns: Python's regex parser, linear, always terminating --------------------------------

def test_a_lone_closing_brace_in_a_pattern_terminates(worker):
    # Before: the converter looped forever on this pattern.
    gbnf = finishes(lambda: grammar_of({"type": "string", "pattern": "^a}$"}))
    assert worker.accept(gbnf, ['"a}"', '"a"', '"a}}"']) == [True, False, False]


@pytest.mark.parametrize("pattern, good, bad", [
    ("ab", ["ab", "xxabyy", "ab\n"], ["a", "ba"]),  # unanchored: a match anywhere
    ("^ab", ["ab", "abz"], ["zab"]),
    ("ab$", ["ab", "zab"], ["abz"]),
    ("^a|b$", ["az", "zb"], ["za", "bz"]),
    ("^(cat|dog)s?$", ["cat", "dogs"], ["cow", "cats!"]),
    (r"^\d{3}-\d{4}$", ["555-1234"], ["555-123", "5a5-1234"]),
    (r"^[A-Z][a-z]*\s\w+$", ["Hello world_1"], ["hello world"]),
    (r"^[^0-9]+$", ["abc", 'q"uote', "new\nline"], ["a1"]),
    (r"^\D\W\S$", ["a!b"], ["1!b", "aab", "a! "]),
    ("^.+$", ["any thing"], ["", "two\nlines"]),
    ("(?s)^.+$", ["two\nlines"], [""]),
    ("(?i)^abc$", ["ABC", "aBc"], ["abd"]),
    (r'^["\\]+$', ['"', "\\", '"\\"'], ["a"]),
    (r"^\n\t$", ["\n\t"], ["nt"]),
    ("^[😀-😂]{2}$", ["😀😂"], ["😀", "ab"]),
    ("^(a?b?)*c$", ["c", "abbac"], ["ca"]),
    ("^$", [""], ["a"]),
    ("", ["", "anything"], []),
])
def test_patterns_hold_the_decoded_string(worker, pattern, good, bad):
    gbnf = grammar_of({"type": "string", "pattern": pattern})
    texts = [json.dumps(s, ensure_ascii=False) for s in good + bad]
    assert worker.accept(gbnf, texts) == [True] * len(good) + [False] * len(bad)


@pytest.mark.parametrize("pattern", [r"^(?=a)\w+$", r"^(a)\1$", r"^\bword\b$", r"^(a)?(?(1)b|c)$", r"^a(^b)$",
                                     "(?m)^a$", "x" * 5001])
def test_what_a_grammar_cannot_hold_falls_back_to_any_string(worker, caplog, pattern):
    with caplog.at_level(logging.INFO, logger="engine.gbnf.pattern"):
        gbnf = grammar_of({"type": "string", "pattern": pattern})
    assert "any string" in caplog.text
    assert worker.accept(gbnf, ['"whatever"', "1"]) == [True, False]


@pytest.mark.parametrize("pattern", ["((", "a{2,1}", "[z-a]", "(?<n>a)(?<n>b)"])
def test_an_invalid_pattern_is_a_400_naming_it(pattern):
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": pattern}}}
    with pytest.raises(InvalidRequest) as info:
        grammar_of(schema)
    assert info.value.param == f"{PARAM}.properties.x.pattern"


def test_a_pattern_nested_too_deeply_is_a_400_not_a_recursion_error():
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(" * 2000 + ")" * 2000}}}
    with pytest.raises(InvalidRequest) as info:
        finishes(lambda: grammar_of(schema))
    assert info.value.param == f"{PARAM}.properties.x.pattern"


# --- 3. schema parts the converter cannot express mean "any JSON value" ---------------------------

ANY_VALUES = ['{"x": 1}', '{"x": "s"}', '{"x": [1, {"a": null}, true]}', '{"x": -1.5e3}', '{"x": {}}']


@pytest.mark.parametrize("sub", [{}, True, {"description": "anything at all"}, {"not": {"type": "string"}},
                                 {"if": {"type": "string"}, "then": {"maxLength": 2}, "else": {"minimum": 3}},
                                 {"x-unknown": 1, "title": "T"}, {"$dynamicRef": "#meta"}])
def test_what_cannot_be_expressed_is_any_value(worker, sub):
    # Before: a description-only property was refused ("cannot be turned into a grammar").
    gbnf = grammar_of({"type": "object", "properties": {"x": sub}, "required": ["x"]})
    assert worker.accept(gbnf, ANY_VALUES + ["{}"]) == [True] * len(ANY_VALUES) + [False]


def test_false_subschemas(worker):
    gbnf = grammar_of({"type": "object", "properties": {"a": False, "b": {"type": "integer"}}})
    assert worker.accept(gbnf, ['{"b": 1}', '{"a": 1}', "{}"]) == [True, False, True]
    gbnf = grammar_of({"type": "array", "items": False})
    assert worker.accept(gbnf, ["[]", "[1]"]) == [True, False]
    gbnf = grammar_of({"type": "array", "prefixItems": [{"type": "integer"}], "items": False})
    assert worker.accept(gbnf, ["[]", "[1]", "[1, 2]"]) == [True, True, False]
    gbnf = grammar_of({"anyOf": [False, {"type": "null"}]})
    assert worker.accept(gbnf, ["null", "1"]) == [True, False]


@pytest.mark.parametrize("schema", [
    False, {"type": "object", "properties": {"a": False}, "required": ["a"]},
    {"allOf": [{"type": "string"}, {"type": "integer"}]},
    {"$defs": {"no": False}, "type": "object", "properties": {"x": {"$ref": "#/$defs/no"}}, "required": ["x"]},
    # every value would nest forever: a model could never finish one
    {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
     "$ref": "#/$defs/n"},
])
def test_a_schema_no_value_satisfies_is_a_400(schema):
    with pytest.raises(InvalidRequest, match="no value"):
        grammar_of(schema)


# --- 4. 500s that are now served, or 400s naming the parameter ------------------------------------

@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "object", "properties": {"a": True}, "required": ["a"]}, ['{"a": [1]}'], ["{}"]),
    ({"type": "array", "items": True}, ['[1, "a", null]'], ["{}"]),
    ({"type": "object", "additionalProperties": True}, ['{"k": 1}'], ["[]"]),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
     ['{"a": 1, "z": "s"}'], ['{"a": 1, "z": 2}']),
    (True, ["1", '"s"'], []),
])
def test_boolean_subschemas_are_served(worker, schema, good, bad):
    # Before: AttributeError ('bool' object has no attribute 'get') -> HTTP 500.
    gbnf = grammar_of(schema)
    assert worker.accept(gbnf, good + bad) == [True] * len(good) + [False] * len(bad)


def nested(kind: str, depth: int) -> dict:
    if kind == "defs":  # deep inside a definition reached through $ref
        return {"$defs": {"deep": nested("items", depth)}, "$ref": "#/$defs/deep"}
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {
            "items": {"type": "array", "items": schema},
            "properties": {"type": "object", "properties": {"a": schema}},
            "anyOf": {"anyOf": [schema, {"type": "null"}]},
            "allOf": {"allOf": [schema]},
        }[kind]
    return schema


@pytest.mark.parametrize("kind", ["items", "properties", "anyOf", "allOf", "defs"])
def test_a_schema_300_levels_deep_is_a_clear_400(kind):
    # Before: RecursionError -> HTTP 500.
    with pytest.raises(InvalidRequest, match="levels deep") as info:
        finishes(lambda: grammar_of(nested(kind, 300)))
    assert info.value.param == PARAM


@pytest.mark.parametrize("kind", ["items", "anyOf", "allOf", "defs"])
def test_a_schema_30_levels_deep_is_served(worker, kind):
    assert compiles(worker, grammar_of(nested(kind, 30)))


def test_long_reference_chains_are_served_without_deep_recursion(worker):
    n = 3000
    defs = {f"d{i}": {"type": "object", "properties": {"next": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(n)}
    defs[f"d{n}"] = {"type": "integer"}
    aliases = {f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(n)}
    aliases[f"a{n}"] = {"type": "boolean"}
    gbnf = grammar_of({"$defs": defs, "$ref": "#/$defs/d0"}, {"$defs": aliases, "$ref": "#/$defs/a0"})
    assert worker.accept(gbnf, ['{"next": {"next": {}}}', "true"]) == [True, True]


def test_references_combining_in_exponentially_many_ways_are_a_400_not_a_hang():
    # llama.cpp's left-recursion check would walk every one of the 2^40 paths.
    defs = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/a{i}"}, {"$ref": f"#/$defs/b{i}"}]} for i in range(40)}
    defs |= {f"a{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"type": "null"}]} for i in range(40)}
    defs |= {f"b{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"type": "boolean"}]} for i in range(40)}
    defs["d40"] = {"type": "integer"}
    with pytest.raises(InvalidRequest, match="too many ways"):
        finishes(lambda: grammar_of({"$defs": defs, "$ref": "#/$defs/d0"}))


@pytest.mark.parametrize("schema", [
    {"enum": [f"value number {i:08d} of a long enumeration" for i in range(20_000)]},
    {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(60_000)}},
    {"anyOf": [{"anyOf": [{"anyOf": [{"type": "integer", "minimum": i} for i in range(60)]}] * 60}] * 60},
    # small, but every level of shared keywords doubles the alternatives to convert
    {"$defs": {f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}] * 2, "minLength": 1} for i in range(20)}
     | {"a20": {"type": "string"}}, "$ref": "#/$defs/a0"},
])
def test_huge_shallow_schemas_are_a_400(schema):
    with pytest.raises(InvalidRequest, match="too large") as info:
        finishes(lambda: grammar_of(schema), 30)
    assert info.value.param == PARAM


def test_the_size_limit_holds_for_all_the_schemas_of_a_grammar():
    string = {"type": "string", "description": "d", "examples": ["a", "b", "c", "d", "e", "f", "g"]}  # 11 values
    tool = {"type": "object", "properties": {f"p{i}": string for i in range(100)}}  # 1103 values
    grammar_of(*[tool] * 40)
    with pytest.raises(InvalidRequest, match="too large"):
        grammar_of(*[tool] * 50)


@pytest.mark.parametrize("schema", [{"$ref": "#"}, {"anyOf": [{"$ref": "#"}, {"type": "string"}]},
                                    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                                     "$ref": "#/$defs/a"}])
def test_references_without_progress_are_a_400(schema):
    with pytest.raises(InvalidRequest) as info:
        grammar_of(schema)
    assert info.value.param == PARAM


@pytest.mark.parametrize("schema", [{"type": "nonsense"}, {"properties": {"x": {"$ref": "#/$defs/Missing"}}},
                                    {"$ref": "https://example.com/schema.json"}, {"minProperties": "two"}, [], "x"])
def test_invalid_schemas_are_a_400_naming_the_schema(schema):
    with pytest.raises(InvalidRequest) as info:
        grammar_of(schema)
    assert info.value.param == PARAM


# --- 5. characters outside the BMP stay whole ------------------------------------------------------

def test_non_bmp_characters_stay_whole(worker):
    # Before: json.dumps wrote "\ud83d\ude00"; the model's reply showed six U+FFFD instead.
    schema = {"type": "object", "properties": {
        "e": {"enum": ["😀", "a😀b"]}, "c": {"const": {"k😀": ["𝄞"]}}, "😀": {"type": "boolean"}},
        "required": ["e", "c", "😀"]}
    gbnf = grammar_of(schema)
    assert "😀" in gbnf and "𝄞" in gbnf and "\\ud83d" not in gbnf.lower()
    good = {"e": "a😀b", "c": {"k😀": ["𝄞"]}, "😀": True}
    assert worker.accept(gbnf, [json.dumps(good, ensure_ascii=False), json.dumps({**good, "e": "😁"},
                                                                                 ensure_ascii=False)]) == [True, False]
    assert GrammarBuilder.literal("😀") == '"😀"'


def test_a_lone_surrogate_is_written_as_its_json_escape(worker):
    gbnf = grammar_of({"enum": ["\ud83d"]})
    gbnf.encode()  # would raise UnicodeEncodeError if the surrogate were left raw
    assert worker.accept(gbnf, ['"\\ud83d"']) == [True]


# --- 6. surrogates and numeric bounds ---------------------------------------------------------------

@pytest.mark.parametrize("pattern", [r"^\ud800{2}$", r"^[\udc00-\udfff][\ud800-\udbff]$", r"^[\udc00-\udfff]$"])
def test_a_pattern_only_surrogates_match_is_a_400(pattern):
    # Before: the grammar allowed the surrogate's three bytes, so the model wrote text that is not
    # UTF-8 (U+FFFD in the reply) under a schema it claimed to follow.
    with pytest.raises(InvalidRequest, match="no value"):
        grammar_of({"type": "string", "pattern": pattern})


def test_character_sets_leave_surrogates_out(worker):
    for pattern in (r"^[\ud000-\ue000]$", r"^.$", r"(?s)^.$", r"^[^a]$", r"^\W\S\D$"):
        assert not [c for c in _classes(pattern_body(pattern)) if intersect(c.ranges, SURROGATES)], pattern
    assert not intersect(PLAIN_CHAR.ranges, SURROGATES)  # any JSON string's characters
    gbnf = grammar_of({"type": "string", "pattern": r"^[\ud000-\ue000]$"})
    assert worker.accept(gbnf, ['"\ud000"', '"\ud7ff"', '"\ue000"', '"a"']) == [True, True, True, False]


def _classes(expr):
    if isinstance(expr, Cls):
        yield expr
    for child in getattr(expr, "items", ()) or ((expr.item,) if isinstance(expr, Rep) else ()):
        yield from _classes(child)


@pytest.mark.parametrize("schema", [
    {"type": "integer", "minimum": 10, "maximum": 1},
    {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 6},
    {"type": "number", "minimum": 2.5, "maximum": 2},
    {"type": "number", "exclusiveMinimum": 5, "maximum": 5},
])
def test_numeric_bounds_nothing_satisfies_are_a_400(schema):
    # Before: only the sign was kept, so an impossible range was served with numbers outside it
    # (while minLength above maxLength was already a 400).
    with pytest.raises(InvalidRequest, match="no value"):
        grammar_of(schema)


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "integer", "minimum": 10, "maximum": 20}, ["10", "15", "20"], ["9", "21", "1975222686", "15.0"]),
    ({"type": "integer", "minimum": -3, "exclusiveMaximum": 2}, ["-3", "0", "1"], ["2", "-4", "-0"]),
    ({"type": "integer", "exclusiveMinimum": 4.5, "maximum": 6.9}, ["5", "6"], ["4", "7"]),
    ({"type": "integer", "minimum": -10**12, "maximum": 10**15 + 7}, ["-1000000000000", "0", "1000000000000007"],
     ["-1000000000001", "1000000000000008", "-0", "007"]),
    ({"type": "integer", "minimum": 0, "maximum": 10**40}, ["5", "9" * 19], ["-1"]),  # past 19 digits: the sign
])
def test_integers_between_bounds_are_exactly_those(worker, schema, good, bad):
    gbnf = grammar_of(schema)
    assert worker.accept(gbnf, good + bad) == [True] * len(good) + [False] * len(bad)


@given(st.integers(-3000, 3000), st.integers(0, 4000))
@settings(max_examples=200, deadline=None)
def test_an_integer_range_spells_every_integer_in_it_and_no_other(first, span):
    pattern = re.compile(_regex(integer_range(first, first + span)) + r"\Z")
    for v in range(first - 25, first + span + 25):
        assert bool(pattern.match(str(v))) == (first <= v <= first + span), v
    assert not any(pattern.match(text) for text in ("-0", "00", "01", "-01", "+1"))


def _regex(expr) -> str:
    """A Python regex matching what a grammar expression matches (characters are ASCII here)."""
    if isinstance(expr, Lit):
        return re.escape(expr.text)
    if isinstance(expr, Cls):
        return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in expr.ranges) + "]"
    if isinstance(expr, Rep):
        return f"(?:{_regex(expr.item)}){{{expr.min},{'' if expr.max is None else expr.max}}}"
    joined = ("|" if isinstance(expr, Alt) else "").join(_regex(item) for item in expr.items)
    return f"(?:{joined})"


def test_an_integer_range_costs_a_few_rules_however_many_properties_use_it():
    # Spelled out value by value, 260 properties of 0..255 passed the grammar size limit.
    schema = {"type": "object", "required": [f"p{i}" for i in range(260)],
              "properties": {f"p{i}": {"type": "integer", "minimum": 0, "maximum": 255} for i in range(260)}}
    assert len(grammar_of(schema)) < 20_000


def test_surrogate_pairs_in_a_pattern_are_the_characters_they_spell(worker):
    # ECMA-262 reads patterns by UTF-16 units; Python's re would see two lone halves.
    gbnf = grammar_of({"type": "string", "pattern": r"^\ud83d\ude00$"})
    assert worker.accept(gbnf, ['"\U0001F600"', '"a"']) == [True, False]
    gbnf = grammar_of({"type": "string", "pattern": r"^(?:[a-z]|[\ud800-\udbff][\udc00-\udfff])+$"})
    assert worker.accept(gbnf, ['"a\U0001F600b"', '"\U00020000"', '"A"']) == [True, True, False]
