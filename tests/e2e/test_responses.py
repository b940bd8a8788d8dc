"""The OpenAI Responses API through the official openai SDK and the OpenAI Agents SDK, on the real
server and model."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

MODEL = "smollm2"
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"],
        "additionalProperties": False}
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "parameters": CITY,
           "strict": True}
DIGITS = {"type": "custom", "name": "dial", "description": "Dial a three-digit code",
          "format": {"type": "grammar", "syntax": "regex", "definition": "[0-9]{3}"}}


class Cat(BaseModel):
    name: str
    age: int


def events(base_url: str, body: dict) -> list[dict]:
    """A streamed response's events, as sent (type and data)."""
    out = []
    with httpx.stream("POST", f"{base_url}/v1/responses", json={**body, "stream": True}, timeout=120) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def test_create_returns_a_full_response_object(client):
    r = client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=12, temperature=0)
    assert r.id.startswith("resp_") and r.object == "response" and r.model == "smollm2-135m"
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens <= 12
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"


def test_the_stream_follows_the_reference_event_sequence(server):
    seen = events(server.base_url, {"model": MODEL, "input": "Say hi.", "max_output_tokens": 16, "temperature": 0})
    kinds = [e["type"] for e in seen]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert [e["sequence_number"] for e in seen] == list(range(len(seen)))
    terminal = [k for k in kinds if k in ("response.completed", "response.incomplete", "response.failed")]
    assert terminal == [kinds[-1]] and kinds[-1] != "response.failed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 1
    text = "".join(e["delta"] for e in seen if e["type"] == "response.output_text.delta")
    final = seen[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text and final["id"] == seen[0]["response"]["id"]
    assert final["usage"]["output_tokens"] > 0 and "cached_tokens" in final["usage"]["input_tokens_details"]


def test_structured_output_through_the_sdk_stream_helper_and_parse(client):
    with client.responses.stream(model=MODEL, input="Describe a cat as JSON.", text_format=Cat, temperature=0,
                                 max_output_tokens=200) as stream:
        final = stream.get_final_response()
    assert isinstance(final.output_parsed, Cat)
    parsed = client.responses.parse(model=MODEL, input="A cat, as JSON.", text_format=Cat, temperature=0,
                                    max_output_tokens=200)
    assert isinstance(parsed.output_parsed, Cat)


def test_function_tools_give_function_call_items_and_stream_their_arguments(server, client):
    r = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER], tool_choice="required",
                                temperature=0, max_output_tokens=200)
    calls = [item for item in r.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert set(json.loads(calls[0].arguments)) == {"city"}
    seen = events(server.base_url, {"model": MODEL, "input": "Weather in Paris?", "tools": [WEATHER],
                                    "tool_choice": "required", "temperature": 0, "max_output_tokens": 200})
    done = [e["item"] for e in seen if e["type"] == "response.output_item.done"]
    streamed = "".join(e["delta"] for e in seen if e["type"] == "response.function_call_arguments.delta"
                       and e["item_id"] == done[0]["id"])
    assert streamed == done[0]["arguments"] and json.loads(streamed)


def test_a_custom_tool_gets_raw_input_held_to_its_regex(server, client):
    r = client.responses.create(model=MODEL, input="Dial the code for the front desk.", tools=[DIGITS],
                                tool_choice={"type": "custom", "name": "dial"}, temperature=0, max_output_tokens=60)
    call = r.output[0]
    assert call.type == "custom_tool_call" and call.name == "dial" and re.fullmatch("[0-9]{3}", call.input)
    seen = events(server.base_url, {"model": MODEL, "input": "Dial it.", "tools": [DIGITS], "tool_choice": "required",
                                    "temperature": 0, "max_output_tokens": 60})
    done = next(e for e in seen if e["type"] == "response.custom_tool_call_input.done")
    deltas = "".join(e["delta"] for e in seen if e["type"] == "response.custom_tool_call_input.delta"
                     and e["item_id"] == done["item_id"])
    assert deltas == done["input"] and re.fullmatch("[0-9]{3}", deltas)


def test_tools_this_server_cannot_run_are_left_out_not_refused(client):
    tools = [WEATHER, {"type": "web_search"}, {"type": "image_generation"}, {"type": "local_shell"},
             {"type": "namespace", "name": "ns", "description": "more", "tools": [{**WEATHER, "name": "forecast"}]}]
    r = client.responses.create(model=MODEL, input="Forecast for Oslo", tools=tools,
                                tool_choice={"type": "function", "name": "forecast", "namespace": "ns"},
                                max_output_tokens=60, temperature=0)
    assert r.output[0].type == "function_call" and (r.output[0].name, r.output[0].namespace) == ("forecast", "ns")


def test_tool_results_in_the_input_are_read(client):
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
               {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "sunny"}]}]
    r = client.responses.create(model=MODEL, input=history, tools=[WEATHER], max_output_tokens=20, temperature=0)
    assert r.status in ("completed", "incomplete") and r.usage.input_tokens > 20


def test_previous_response_id_continues_from_the_cache_and_the_store_answers(client):
    first = client.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=10, temperature=0)
    second = client.responses.create(model=MODEL, input="Another one?", previous_response_id=first.id,
                                     max_output_tokens=10, temperature=0)
    assert second.previous_response_id == first.id
    # Everything up to the new input was computed for the first response: only the new turn is.
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens
    assert client.responses.retrieve(first.id).output_text == first.output_text
    items = client.responses.input_items.list(second.id).data
    assert [i.type for i in items] == ["message"] and items[0].content[0].text == "Another one?"
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="x", previous_response_id=first.id)
    assert info.value.body["param"] == "previous_response_id"


def test_store_false_is_not_retrievable(client):
    r = client.responses.create(model=MODEL, input="hi", max_output_tokens=3, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_input_tokens_counts_what_create_prefills(client):
    count = client.responses.input_tokens.count(model=MODEL, input="Count me", instructions="Be brief.")
    r = client.responses.create(model=MODEL, input="Count me", instructions="Be brief.", max_output_tokens=2)
    assert count.input_tokens == r.usage.input_tokens


def test_overflow_is_context_length_exceeded_unless_truncation_is_auto(client):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 600} for i in range(9)]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=turns, max_output_tokens=5)
    assert info.value.body["code"] == "context_length_exceeded"
    r = client.responses.create(model=MODEL, input=turns, max_output_tokens=5, truncation="auto")
    assert r.usage.input_tokens < 4096


def test_what_cannot_be_honoured_is_a_400_naming_it(client):
    image = [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.invalid/a.png"}]}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=image)
    assert info.value.body["param"] == "input[0].content[0]"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", background=True)
    assert info.value.body["param"] == "background"
    # Fields a client sends that change nothing here are accepted (Codex sends client_metadata).
    r = client.responses.create(model=MODEL, input="hi", max_output_tokens=2, include=["reasoning.encrypted_content"],
                                extra_body={"client_metadata": {"x": "y"}}, prompt_cache_key="t1",
                                reasoning={"effort": "none"}, service_tier="auto", metadata={"k": "v"})
    assert r.metadata == {"k": "v"}


async def test_the_agents_sdk_runs_a_tool_then_gives_structured_output(server):
    agents = pytest.importorskip("agents")

    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        calls.append(city)
        return f"sunny, 21 C in {city}"

    class Forecast(BaseModel):
        city: str = Field(max_length=40)
        summary: str = Field(max_length=80)

    class AnswerAfterTheTool(agents.RunHooks):
        # A 135M model calls tools for ever when it may: once the tool ran, it must answer.
        async def on_tool_end(self, context, agent, tool, result):
            agent.model_settings = agent.model_settings.resolve(agents.ModelSettings(tool_choice="none"))

    client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_tracing_disabled(True)
    agent = agents.Agent(name="weather", instructions="Call get_weather, then answer.", model=MODEL,
                         tools=[get_weather], output_type=Forecast, reset_tool_choice=False,
                         model_settings=agents.ModelSettings(tool_choice="required", max_tokens=200, temperature=0,
                                                                  parallel_tool_calls=False))
    result = await asyncio.wait_for(agents.Runner.run(agent, "What is the weather in Paris?", max_turns=4,
                                                      hooks=AnswerAfterTheTool()), 240)
    assert calls and isinstance(result.final_output, Forecast)
    streamed = agents.Runner.run_streamed(agent.clone(model_settings=agents.ModelSettings(
        tool_choice="none", max_tokens=200, temperature=0)), "Weather in Oslo?", max_turns=2)
    kinds = [e.data.type async for e in streamed.stream_events() if e.type == "raw_response_event"]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert isinstance(streamed.final_output, Forecast)
