"""Tool calling through both SDKs on the default model (generic format: SmolLM2's template has no
tools), with calls held to the tools' schemas by grammar."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

MODEL = "smollm2"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TIME = {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 30}},
        "required": ["timezone"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
                                           "parameters": TIME}}]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris, and what time is it in Tokyo?"}]


def ask(client, **kw):
    args = dict(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=300, temperature=0) | kw
    return client.chat.completions.create(**args)


def assert_valid_calls(message) -> None:
    assert message.tool_calls
    for call in message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_required_call_then_the_answer_from_the_tool_result(client):
    first = ask(client, tool_choice="required", parallel_tool_calls=False)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert_valid_calls(choice.message)
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    history = [*ASK, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"result": "sunny, 21 degrees"})}]
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, tool_choice="none",
                                            max_tokens=30, temperature=0)
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].message.content
    bare = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)
    assert answer.usage.prompt_tokens > bare.usage.prompt_tokens + 20  # the call and its result are in the prompt


def test_named_tool_choice_calls_only_that_tool(client):
    r = ask(client, tool_choice={"type": "function", "function": {"name": "get_time"}}, parallel_tool_calls=False)
    assert_valid_calls(r.choices[0].message)
    assert {c.function.name for c in r.choices[0].message.tool_calls} == {"get_time"}


def test_none_never_calls(client):
    r = ask(client, tool_choice="none", max_tokens=40)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")


def test_auto_answers_or_calls_consistently(client):
    for question in ("Hello! How are you?", "Call get_weather for Paris in celsius."):
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}], tools=TOOLS,
                                           max_tokens=300, temperature=0)
        choice = r.choices[0]
        assert "<tool_call>" not in (choice.message.content or "")  # calls never leak into the text
        if choice.finish_reason == "length":
            continue  # cut mid-reply: the last call may be partial, as OpenAI returns it (seen on AVX2)
        assert (choice.finish_reason == "tool_calls") == bool(choice.message.tool_calls)
        if choice.message.tool_calls:
            assert_valid_calls(choice.message)


def test_parallel_calls_and_their_switch(client):
    many = ask(client, tool_choice="required", max_tokens=600)
    assert_valid_calls(many.choices[0].message)
    assert len(many.choices[0].message.tool_calls) >= 2
    one = ask(client, tool_choice="required", parallel_tool_calls=False)
    assert len(one.choices[0].message.tool_calls) == 1


def test_streamed_tool_calls_reassemble_to_the_non_streamed_ones(client):
    kw = dict(tool_choice="required", max_tokens=600)  # room for the most calls a reply may hold
    ask(client, **kw)  # so both requests below find the prompt in the prefix cache alike: logits
    whole = ask(client, **kw).choices[0].message  # from cached and recomputed prefixes differ slightly
    calls: dict[int, dict] = {}
    finish = None
    for chunk in ask(client, stream=True, **kw):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        assert not delta.content, "a call's text leaked into content"
        finish = chunk.choices[0].finish_reason or finish
        for part in delta.tool_calls or []:
            if part.index not in calls:
                assert part.id and part.type == "function" and part.function.name
                calls[part.index] = {"name": part.function.name, "arguments": part.function.arguments or ""}
            else:
                assert part.id is None and part.function.name is None
                calls[part.index]["arguments"] += part.function.arguments
    assert finish == "tool_calls"
    assert [calls[i] for i in sorted(calls)] == [
        {"name": c.function.name, "arguments": c.function.arguments} for c in whole.tool_calls]


def test_response_format_with_forced_tools_is_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, tool_choice="required", response_format={"type": "json_object"})
    assert info.value.body["param"] == "response_format" and "tool call" in info.value.body["message"]


def test_tool_with_an_invalid_schema_is_400(client):
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "not-a-type"}}}}}]
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, tools=bad, tool_choice="required")
    assert info.value.body["param"] == "tools[0].function.parameters"


ANTHROPIC_TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"],
                    "input_schema": t["function"]["parameters"]} for t in TOOLS]


def anthropic_ask(client, **kw):
    args = dict(model=MODEL, max_tokens=300, messages=ASK, tools=ANTHROPIC_TOOLS, extra_body={"temperature": 0}) | kw
    return client.messages.create(**args)


def test_anthropic_tool_use_loop(anthropic_client):
    first = anthropic_ask(anthropic_client, tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].id.startswith("toolu_")
    jsonschema.validate(uses[0].input, SCHEMAS[uses[0].name])
    history = [*ASK, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                             "content": [{"type": "text", "text": "sunny"}]},
                                            {"type": "text", "text": "Now answer in one sentence."}]}]
    answer = anthropic_ask(anthropic_client, messages=history, tool_choice={"type": "none"}, max_tokens=30)
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert all(b.type == "text" for b in answer.content) and answer.content


def test_anthropic_named_tool_and_streamed_input_json(anthropic_client):
    kw = dict(tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    whole = anthropic_ask(anthropic_client, **kw)
    assert {b.name for b in whole.content if b.type == "tool_use"} == {"get_weather"}
    with anthropic_client.messages.stream(model=MODEL, max_tokens=300, messages=ASK, tools=ANTHROPIC_TOOLS,
                                          extra_body={"temperature": 0}, **kw) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert partial, "arguments were not streamed as input_json_delta"
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert all(b.type == "tool_use" and b.input == {} for b in starts)
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content] == [b.input for b in whole.content]


def test_anthropic_call_cut_off_by_max_tokens_is_still_a_message(anthropic_client):
    cut_inside_a_call = 0
    for n in (16, 20, 24, 28):
        m = anthropic_ask(anthropic_client, tool_choice={"type": "any"}, max_tokens=n)
        assert m.stop_reason == "max_tokens"
        uses = [b for b in m.content if b.type == "tool_use"]
        assert all(isinstance(b.input, dict) for b in uses)
        cut_inside_a_call += bool(uses)
    assert cut_inside_a_call


def test_anthropic_count_tokens_includes_the_tools(anthropic_client):
    without = anthropic_client.messages.count_tokens(model=MODEL, messages=ASK).input_tokens
    with_tools = anthropic_client.messages.count_tokens(model=MODEL, messages=ASK, tools=ANTHROPIC_TOOLS).input_tokens
    assert with_tools > without + 20
