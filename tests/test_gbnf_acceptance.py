"""Grammars from realistic schemas accept every valid instance and reject invalid ones, as judged
by the real llama.cpp sampler fed the instance's tokens (tests/gbnf_worker.py); and random
schemas never make the converter fail with anything but InvalidRequest, nor llama.cpp refuse
what it produced.

Valid instances come from a small generator below (hypothesis-jsonschema 0.23.1 does not work
with the installed Hypothesis), each checked valid with jsonschema before use. It writes object
members in the order the schema declares them, the order the grammar holds a model to.
"""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from typing import Any, Literal, Optional

import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from engine.errors import InvalidRequest
from tests.gbnf_worker import grammar_of

PARAM = "response_format.json_schema.schema"
# Shrinking a failure through llama.cpp takes minutes; the failing example is reported as drawn.
NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)


# --- instances ------------------------------------------------------------------------------------

# SmolLM2's vocabulary cannot spell UTF-8 lead byte 0xF1 (planes 4 to 7, all unassigned).
CHARACTERS = st.characters(exclude_categories=("Cs",), max_codepoint=0x3FFFF)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.text(CHARACTERS, max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False))
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(CHARACTERS, max_size=5), inner, max_size=3)), max_leaves=6)


def resolve(schema: Any, root: dict) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        node = root
        for key in schema["$ref"].lstrip("#/").split("/"):
            node = node[key] if key else node
        schema = node
    return schema


def instances(schema: Any, root: dict, depth: int = 0) -> st.SearchStrategy:
    schema = resolve(schema, root)
    if schema is True or not isinstance(schema, dict) or not schema.keys() - {"description", "title", "default"}:
        return ANY_JSON
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([instances(s, root, depth + 1) for s in schema.get("anyOf") or schema["oneOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        return st.one_of([instances({**schema, "type": k}, root, depth) for k in kind])
    return {"object": _objects, "array": _arrays, "string": _strings, "integer": _integers, "number": _numbers,
            "boolean": lambda *_: st.booleans(), "null": lambda *_: st.none()}[kind](schema, root, depth)


def _objects(schema: dict, root: dict, depth: int) -> st.SearchStrategy:
    props, required = schema.get("properties", {}), set(schema.get("required", ()))
    members = [st.tuples(st.just(name), instances(sub, root, depth + 1)).map(lambda kv: [kv]) if name in required
               else st.one_of(st.just([]), st.tuples(st.just(name), instances(sub, root, depth + 1)).map(lambda kv: [kv]))
               for name, sub in props.items() if sub is not False]
    extra = schema.get("additionalProperties", not props)
    extras = st.just([]) if extra is False else st.lists(st.tuples(
        st.text(CHARACTERS, min_size=1, max_size=6).filter(lambda k: k not in props), instances(extra, root, depth + 1)),
        max_size=2, unique_by=lambda kv: kv[0])
    return st.tuples(*members, extras).map(lambda parts: dict(kv for part in parts for kv in part))


def _arrays(schema: dict, root: dict, depth: int) -> st.SearchStrategy:
    prefix = schema.get("prefixItems", [])
    low = max(schema.get("minItems", 0) - len(prefix), 0)
    if depth > 3 and low == 0 and not prefix:  # ends recursive schemas
        return st.just([])
    high = 0 if schema.get("items") is False else min(schema.get("maxItems", 99) - len(prefix), low + 3)
    head = st.tuples(*(instances(sub, root, depth + 1) for sub in prefix)).map(list)
    tail = st.lists(instances(schema.get("items", True), root, depth + 1), min_size=low, max_size=max(low, high))
    return st.tuples(head, tail).map(lambda parts: parts[0] + parts[1])


def _strings(schema: dict, root: dict, depth: int) -> st.SearchStrategy:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True, alphabet=CHARACTERS)
    fmt = schema.get("format")
    if fmt == "date":
        return st.dates().map(datetime.date.isoformat)
    if fmt == "date-time":
        return st.datetimes(timezones=st.just(datetime.timezone.utc)).map(datetime.datetime.isoformat)
    if fmt == "uuid":
        return st.uuids().map(str)
    low = schema.get("minLength", 0)
    return st.text(CHARACTERS, min_size=low, max_size=min(schema.get("maxLength", 40), low + 40))


def _integers(schema: dict, root: dict, depth: int) -> st.SearchStrategy:
    return st.integers(schema.get("minimum", -10**18), schema.get("maximum", 10**18))


def _numbers(schema: dict, root: dict, depth: int) -> st.SearchStrategy:
    low, high = schema.get("minimum"), schema.get("maximum")
    return st.one_of(st.floats(low, high, allow_nan=False, allow_infinity=False), _integers(schema, root, depth))


def spellings(value: Any) -> list[str]:
    """Compact, spaced and indented JSON. Characters are written raw: the grammar holds strings
    under enum, const or pattern to that one spelling (other strings may use any escape)."""
    return [json.dumps(value, ensure_ascii=False), json.dumps(value, separators=(",", ":"), ensure_ascii=False),
            json.dumps(value, indent=2, ensure_ascii=False)]


# --- realistic schemas ----------------------------------------------------------------------------

OPENAI_STRICT = {"type": "object", "properties": {
    "location": {"type": "string", "description": "City and country, e.g. Bogotá, Colombia"},
    "units": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]},
    "days": {"type": "array", "items": {"type": "object", "properties": {
        "date": {"type": "string", "format": "date"}, "hourly": {"type": "boolean"}},
        "required": ["date", "hourly"], "additionalProperties": False}}},
    "required": ["location", "units", "days"], "additionalProperties": False}


class Color(str, enum.Enum):
    red = "red"
    green = "green"


class Address(BaseModel):
    street: str = Field(max_length=30)
    number: int = Field(ge=0, le=10000)
    zip: str = Field(pattern=r"^[0-9]{5}(-[0-9]{4})?$")


class Person(BaseModel):
    name: str = Field(max_length=20, min_length=1)
    age: Optional[int] = Field(default=None, ge=0, le=150)
    favourite: Color
    address: Address
    previous: list[Address] = Field(default_factory=list, max_length=2)
    born: datetime.date
    id: uuid.UUID
    kind: Literal["a", "b"] = "a"
    score: float = Field(ge=0)
    seen: Optional[datetime.datetime] = None


class Tree(BaseModel):
    label: str = Field(max_length=5)
    children: list["Tree"] = []


MISC = {"type": "object", "properties": {
    "pair": {"type": "array", "prefixItems": [{"type": "integer", "minimum": 0, "maximum": 9}, {"const": {"k": [1, "😀"]}}],
             "items": {"type": "null"}, "minItems": 2, "maxItems": 4},
    "code": {"type": "string", "pattern": '^[A-Z]{2}-[a-z"\\\\]{1,3}$'},
    "note": {"type": "string", "maxLength": 524288},
    "any": {"description": "anything"},
    "extra": {"type": "object", "additionalProperties": {"type": "integer", "minimum": -5, "maximum": 5}}},
    "required": ["pair", "code"], "additionalProperties": False}

SCHEMAS = {"openai": OPENAI_STRICT, "person": Person.model_json_schema(), "tree": Tree.model_json_schema(),
           "misc": MISC}


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), phases=NO_SHRINKING)
@given(data=st.data())
def test_valid_instances_are_accepted(worker, name, data):
    schema = SCHEMAS[name]
    values = data.draw(st.lists(instances(schema, schema), min_size=3, max_size=3))
    for value in values:
        jsonschema.validate(value, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    texts = [text for value in values for text in spellings(value)]
    assert worker.accept(grammar_of(schema), texts) == [True] * len(texts), texts


INVALID = {
    "openai": [{"location": "Oslo", "units": "kelvin", "days": []}, {"location": "Oslo", "days": []},
               {"location": 5, "units": None, "days": []}, {"location": "Oslo", "units": None, "days": [], "x": 1},
               {"location": "Oslo", "units": None, "days": [{"date": "2024-13-01", "hourly": True}]}],
    "person": [{"name": "", "favourite": "red", "address": {"street": "s", "number": 1, "zip": "12345"},
                "born": "2000-01-01", "id": str(uuid.UUID(int=1)), "score": 1},
               {"name": "n", "favourite": "blue", "address": {"street": "s", "number": 1, "zip": "12345"},
                "born": "2000-01-01", "id": str(uuid.UUID(int=1)), "score": 1},
               {"name": "n", "favourite": "red", "address": {"street": "s", "number": 1, "zip": "1234"},
                "born": "2000-01-01", "id": str(uuid.UUID(int=1)), "score": 1},
               {"name": "n", "favourite": "red", "address": {"street": "s", "number": -1, "zip": "12345"},
                "born": "2000-01-01", "id": str(uuid.UUID(int=1)), "score": 1},
               {"name": "n", "favourite": "red", "address": {"street": "s", "number": 1, "zip": "12345"},
                "born": "2000-01-01", "id": "not-a-uuid", "score": 1}],
    "tree": [{"label": "toolong"}, {"label": "a", "children": [{"children": []}]}, {"children": []}],
    "misc": [{"pair": [1], "code": "AB-a"}, {"pair": [1, {"k": [1, "😀"]}], "code": "ab-a"},
             {"pair": [1.5, {"k": [1, "😀"]}], "code": "AB-a"}, {"pair": [1, {"k": [1, "😀"]}, 3], "code": "AB-a"},
             {"pair": [1, {"k": [1, "😀"]}], "code": "AB-a", "extra": {"n": "6"}},
             {"pair": [1, {"k": [1, "😀"]}], "code": "AB-a", "x": 1}, {"pair": [1, {"k": [1]}], "code": "AB-a"},
             {"pair": [-1, {"k": [1, "😀"]}], "code": "AB-a"}],
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_invalid_instances_are_rejected(worker, name):
    schema = SCHEMAS[name]
    for value in INVALID[name]:
        assert not jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).is_valid(value), value
    texts = [json.dumps(value, ensure_ascii=False) for value in INVALID[name]]
    assert worker.accept(grammar_of(schema), texts) == [False] * len(texts)


def test_all_of_merges_object_properties(worker):
    schema = {"$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
              "allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"tag": {"enum": ["x", "y"]}}}],
              "additionalProperties": False, "required": ["tag"]}
    assert worker.accept(grammar_of(schema), ['{"id": 1, "tag": "x"}', '{"tag": "x"}', '{"id": 1, "tag": "z"}',
                                              '{"id": 1}']) == [True, False, False, False]


def test_same_named_defs_of_two_schemas_stay_apart(worker):
    def item(kind: str) -> dict:
        return {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
                "$defs": {"Item": {"type": "object", "properties": {"v": {"type": kind}}, "required": ["v"]}}}

    gbnf = grammar_of(item("integer"), item("boolean"))
    assert worker.accept(gbnf, ['{"item": {"v": 1}}', '{"item": {"v": true}}', '{"item": {"v": "s"}}']) == \
        [True, True, False]


# --- random schemas -------------------------------------------------------------------------------

PATTERNS = ["^a}$", "^[a-z]{2,5000}$", r"(\d+)\1", "(?=x)y", "^(a|b)*c{0,3000}$", "^$", "(?i)[à-ÿ]+", r"\bx",
            "^(a?)*$", "😀+", '["\\\\]', "(?m)^a$", r"\S\W\D", "x{2,1000000}", "(a|)+?b{3}"]
NAMES = st.sampled_from(["a", "b", "Item", "x y", "😀", "$ref", "pattern", ""])
SCALAR_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.just("😀\ud83d"))
KINDS = ["string", "integer", "number", "boolean", "null", "object", "array"]


def _typed() -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(KINDS), st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True)),
        "minLength": st.sampled_from([0, 2, 1999, 2001, 5000]), "maxLength": st.sampled_from([0, 3, 2001, 524288]),
        "pattern": st.sampled_from(PATTERNS), "format": st.sampled_from(["date", "uuid", "email", "date-time"]),
        "minimum": st.integers(-3, 3), "exclusiveMinimum": st.integers(-3, 3), "enum": st.lists(SCALAR_VALUES, max_size=4),
        "const": SCALAR_VALUES, "description": st.text(max_size=5), "nullable": st.booleans(),
        "not": st.just({"type": "null"}), "minItems": st.sampled_from([0, 1, 2500]),
        "maxItems": st.sampled_from([0, 2, 1999, 3000])})


def _leaves() -> st.SearchStrategy:
    refs = st.sampled_from(["#", "#/$defs/d0", "#/$defs/d1", "#/$defs/d0", "#/$defs/d1", "#/properties/a",
                            "#/$defs/missing"]).map(lambda r: {"$ref": r})
    return st.one_of(st.booleans(), _typed(), _typed(), refs)


def _branches(child: st.SearchStrategy) -> st.SearchStrategy:
    objects = st.fixed_dictionaries({"properties": st.dictionaries(NAMES, child, max_size=4)}, optional={
        "type": st.just("object"), "required": st.lists(NAMES, max_size=3, unique=True),
        "additionalProperties": st.one_of(st.booleans(), child), "patternProperties": st.just({"^x": {}})})
    arrays = st.fixed_dictionaries({"type": st.just("array")}, optional={
        "items": child, "prefixItems": st.lists(child, min_size=1, max_size=3), "minItems": st.sampled_from([0, 1, 2500]),
        "maxItems": st.sampled_from([1, 3, 2500])})
    combos = st.builds(lambda key, options: {key: options}, st.sampled_from(["anyOf", "oneOf", "allOf"]),
                       st.lists(child, min_size=1, max_size=3))
    with_siblings = st.builds(lambda a, b: {**a, **b}, combos, st.one_of(objects, arrays, _typed()))
    return st.one_of(objects, arrays, combos, with_siblings)


SUBSCHEMAS = st.recursive(_leaves(), _branches, max_leaves=12)
SCHEMA_DOCS = st.builds(lambda body, d0, d1: {**body, "$defs": {"d0": d0, "d1": d1}} if isinstance(body, dict) else body,
                        SUBSCHEMAS, SUBSCHEMAS, SUBSCHEMAS)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), phases=NO_SHRINKING)
@given(docs=st.lists(SCHEMA_DOCS, min_size=1, max_size=3))
def test_random_schemas_give_a_grammar_or_a_400(worker, docs):
    try:
        gbnf = grammar_of(*docs)
    except InvalidRequest as exc:
        assert exc.param.startswith(PARAM)
        return
    reply = worker.compile(gbnf)
    assert reply["ok"] and not reply.get("crashed"), gbnf
