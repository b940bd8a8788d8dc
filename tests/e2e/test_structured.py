"""response_format: JSON objects and JSON Schemas, held by grammar; every output validates."""

from __future__ import annotations

import json
from enum import Enum

import jsonschema
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

MODEL = "smollm2"


class Color(str, Enum):
    red = "red"
    green = "green"


class Address(BaseModel):
    street: str = Field(max_length=30)
    number: int


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int
    favourite: Color
    address: Address


class Shopping(BaseModel):
    items: list[str] = Field(max_length=3)
    total: float
    paid: bool


@pytest.mark.parametrize("model_cls, prompt", [
    (Person, "Invent a person with an address."),
    (Shopping, "Invent a short shopping list."),
    (Color, "Pick a color."),
])
def test_parse_returns_the_pydantic_model(client, model_cls, prompt):
    schema_cls = model_cls if issubclass(model_cls, BaseModel) else type("Choice", (BaseModel,), {
        "__annotations__": {"choice": model_cls}})
    r = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                      response_format=schema_cls, max_tokens=200, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, schema_cls)


def test_json_object_is_a_json_object(client):
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Reply with a JSON object holding a cat's name and age."}],
        response_format={"type": "json_object"}, max_tokens=300, temperature=0)
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    assert isinstance(json.loads(r.choices[0].message.content), dict)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "nonsense"}}},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}},
    {"type": "object", "minProperties": "two"},
])
def test_invalid_schemas_are_400(client, schema):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    assert info.value.body["param"] == "response_format.json_schema.schema"


LEAVES = st.one_of(
    st.just({"type": "integer"}),
    st.just({"type": "boolean"}),
    st.just({"type": "number"}),
    st.integers(1, 12).map(lambda n: {"type": "string", "maxLength": n}),
    st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=1, max_size=3, unique=True).map(
        lambda vals: {"type": "string", "enum": vals}),
)


def objects(children):
    names = st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=1, max_size=3, unique=True)
    return names.flatmap(lambda keys: st.tuples(
        st.just(keys), st.lists(children, min_size=len(keys), max_size=len(keys)),
        st.lists(st.booleans(), min_size=len(keys), max_size=len(keys)),
    )).map(lambda t: {"type": "object", "properties": dict(zip(t[0], t[1])),
                      "required": [k for k, req in zip(t[0], t[2]) if req], "additionalProperties": False})


SCHEMAS = st.recursive(LEAVES, lambda children: st.one_of(
    objects(children), children.map(lambda c: {"type": "array", "items": c, "maxItems": 3})), max_leaves=6).map(
    lambda s: s if s.get("type") == "object" else {"type": "object", "properties": {"value": s},
                                                   "required": ["value"], "additionalProperties": False})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=SCHEMAS)
def test_every_output_validates_against_its_generated_schema(client, schema):
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Fill in this JSON."}], max_tokens=400, temperature=0.7,
        seed=1, response_format={"type": "json_schema", "json_schema": {"name": "gen", "schema": schema, "strict": True}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_anthropic_output_config_format_gives_valid_json(anthropic_client):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    m = anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "A city and its population, as JSON."}],
        output_config={"format": {"type": "json_schema", "schema": schema}}, extra_body={"temperature": 0})
    assert m.stop_reason == "end_turn"
    jsonschema.validate(json.loads(m.content[0].text), schema)
