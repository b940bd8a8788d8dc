import pytest

from engine import InvalidRequest
from engine.gbnf import GrammarBuilder
from engine.tools import Tooling
from engine.types import (GenerateRequest, Message, OutputKind, ResponseFormat, ToolChoice, ToolChoiceMode,
                          ToolSpec)


def item_schema(kind: str) -> dict:
    return {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
            "$defs": {"Item": {"type": "object", "properties": {"v": {"type": kind}}, "required": ["v"]}}}


def test_same_named_defs_of_two_schemas_stay_apart():
    g = GrammarBuilder()
    g.add_schema(item_schema("integer"), "a", "a")
    g.add_schema(item_schema("boolean"), "b", "b")
    rules = dict(line.split(" ::= ", 1) for line in g.build().splitlines() if " ::= " in line)
    assert rules["a-Item"] != rules["b-Item"]
    assert "json-integer" in rules["a-Item"] and '"true" | "false"' in rules["b-Item"]


@pytest.mark.parametrize("schema", [{"type": "nonsense"}, {"properties": {"x": {"$ref": "#/$defs/Missing"}}}, []])
def test_bad_schemas_are_invalid_requests(schema):
    with pytest.raises(InvalidRequest):
        GrammarBuilder().add_schema(schema, "x", "response_format.json_schema.schema")


def req(**kw) -> GenerateRequest:
    return GenerateRequest(messages=[Message("user", "hi")], **kw)


TOOL = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})


def test_auto_tools_constrain_from_the_first_token_and_forced_tools_allow_only_calls():
    # No lazy grammar any more: llama.cpp aborts when the token that completes a lazy trigger
    # carries text the grammar refuses. Auto is free text that never opens a call, then calls.
    tooling = Tooling.for_template("plain template")
    auto = tooling.grammar(req(tools=[TOOL]))
    rules = dict(line.split(" ::= ", 1) for line in auto.gbnf.splitlines() if " ::= " in line)
    assert rules["root"].endswith("calls?") and rules["root"].startswith("free-text")
    forced = tooling.grammar(req(tools=[TOOL], tool_choice=ToolChoice(ToolChoiceMode.REQUIRED)))
    assert dict(line.split(" ::= ", 1) for line in forced.gbnf.splitlines() if " ::= " in line)["root"] == "calls"
    assert tooling.grammar(req(tools=[TOOL], tool_choice=ToolChoice(ToolChoiceMode.NONE))) is None


def test_forced_tool_with_response_format_is_refused():
    with pytest.raises(InvalidRequest, match="response_format"):
        Tooling().grammar(req(tools=[TOOL], tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
                              response_format=ResponseFormat(OutputKind.JSON_OBJECT)))


def test_named_tool_must_exist():
    with pytest.raises(InvalidRequest, match="nope"):
        Tooling().grammar(req(tools=[TOOL], tool_choice=ToolChoice(ToolChoiceMode.FUNCTION, "nope")))


def test_generic_format_describes_tools_in_the_system_prompt():
    messages, tools = Tooling.for_template("plain").prepare(req(tools=[TOOL]))
    assert tools is None and messages[0]["role"] == "system" and "get_weather" in messages[0]["content"]


def test_native_template_gets_tools_and_call_arguments_as_objects():
    tooling = Tooling.for_template("... <tool_call> ...")
    assert tooling.native
    from engine.types import ToolCall
    history = [Message("user", "hi"), Message("assistant", "", tool_calls=[ToolCall("c1", "get_weather", '{"city": "Oslo"}')]),
               Message("tool", "rainy", tool_call_id="c1")]
    messages, tools = tooling.prepare(GenerateRequest(messages=history, tools=[TOOL]))
    assert tools[0]["function"]["name"] == "get_weather"
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert messages[2]["tool_call_id"] == "c1"
