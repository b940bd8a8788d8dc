"""The Responses translator's parts without a model: input items, tools, custom-tool input
decoding, output items and their events, the bounded store, and liveness in a long prefill."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from engine import Delta, Message, Registry, ThreadLauncher, ToolCallDelta
from engine.config import ModelsConfig, ModelSpec, Source
from server import sse
from server.app import create_app
from server.errors import ApiError
from server.openai.responses.items import InputReader
from server.openai.responses.output import InputField, OutputItems
from server.openai.responses.store import ResponseStore, Stored
from server.openai.responses.tools import read_tool_choice, read_tools
from server.settings import Settings

from .fake_backend import PLAIN


def test_input_items_become_turns_with_calls_joined_and_results_named():
    conv = InputReader(lambda _: None).read([
        {"role": "developer", "content": "rules"},
        {"content": "hi", "role": "user"},  # no type: a message
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "think"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "patch", "input": "*** Begin"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "web_search_call", "id": "ws_1"},  # a tool that does not run here: skipped
        {"type": "additional_tools", "role": "developer", "tools": [{"type": "function", "name": "g"}]},
    ])
    roles = [m.role for m in conv.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    assistant = conv.messages[2]
    assert assistant.reasoning == "think" and [c.name for c in assistant.tool_calls] == ["f", "patch"]
    assert json.loads(assistant.tool_calls[1].arguments) == {"input": "*** Begin"}
    assert conv.messages[3].name == "f" and conv.extra_tools == [{"type": "function", "name": "g"}]
    assert all(item["id"] for item in conv.items) and conv.items[1]["content"][0] == {"type": "input_text", "text": "hi"}


@pytest.mark.parametrize("item, param", [
    ({"type": "function_call", "name": "f"}, "input[0].call_id"),
    ({"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}, "input[0].content[0]"),
    ({"role": "robot", "content": "x"}, "input[0].role"),
    ({"type": "nonsense"}, "input[0].type"),
    ({"type": [1]}, "input[0].type"),  # unhashable: was a TypeError, a 500
    ({"type": "reasoning", "summary": 5}, "input[0].summary"),
    ({"type": "function_call", "call_id": "c", "name": "f", "namespace": 5}, "input[0].namespace"),
])
def test_bad_input_items_name_their_place(item, param):
    with pytest.raises(ApiError) as info:
        InputReader(lambda _: None).read([item])
    assert info.value.param == param


@pytest.mark.parametrize("tools, choice, param", [
    ([{"type": "namespace", "name": "ns", "tools": 5}], None, "tools[0].tools"),
    ([{"type": "custom", "name": "c", "format": "text"}], None, "tools[0].format"),
    ([{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "regex", "definition": "a)|(b"}}],
     None, "tools[0].format.definition"),  # wrapped in ^(?:...)$ it would have read as a valid pattern
    ([{"type": 5, "name": "f"}], None, "tools[0].type"),
    ([], {"type": "allowed_tools", "tools": 5}, "tool_choice.tools"),
    ([], {"type": ["function"]}, "tool_choice.type"),
])
def test_malformed_tools_are_400s_naming_the_field(tools, choice, param):
    with pytest.raises(ApiError) as info:
        read_tool_choice(choice, read_tools(tools, []))
    assert (info.value.status, info.value.param) == (400, param)


def test_tool_outputs_after_previous_response_id_keep_the_tools_name():
    conv = InputReader(lambda _: None, {"c1": "lookup"}).read(
        [{"type": "function_call_output", "call_id": "c1", "output": "42"}])
    assert conv.messages[0].name == "lookup"


def test_tools_custom_namespaced_and_hosted():
    tools = read_tools([
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "dial", "format": {"type": "grammar", "syntax": "regex", "definition": "[0-9]+"}},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]},
        {"type": "web_search"}, {"type": "image_generation"}, {"type": "mcp", "server_label": "x"},
    ], [])
    assert [s.name for s in tools.specs] == ["f", "dial", "ns.g"]
    assert tools.custom == {"dial"} and tools.call_item_fields("ns.g") == {"name": "g", "namespace": "ns"}
    assert tools.specs[1].parameters["properties"]["input"]["pattern"] == "^(?:[0-9]+)$"
    assert read_tool_choice({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]},
                            tools).mode.value == "required"
    assert [s.name for s in tools.specs] == ["f"]
    with pytest.raises(ApiError):
        read_tool_choice({"type": "web_search_preview"}, tools)


def test_custom_input_is_decoded_across_any_cut():
    text = 'a "quoted" line\nwith \\ and 😀 and é'
    arguments = json.dumps({"input": text})
    for cut in range(1, len(arguments)):
        field = InputField()
        got = field.push(arguments[:cut]) + field.push(arguments[cut:])
        assert got == text and field.closed, cut
    escaped = json.dumps({"input": text}, ensure_ascii=True)  # surrogate pairs as \ud83d\ude00
    field = InputField()
    assert "".join(field.push(ch) for ch in escaped) == text


def test_a_lone_surrogate_escape_in_custom_input_reads_as_a_replacement_character():
    for arguments in ('{"input": "a\\ud800"}', '{"input": "a\\ud800\\u0041"}'):
        for cut in range(1, len(arguments)):
            field = InputField()
            got = field.push(arguments[:cut]) + field.push(arguments[cut:])
            assert field.closed and got == ("a\ufffd" if arguments.endswith('0"}') else "a\ufffdA"), cut
    assert sse.utf8("x\ud800") == "x\ufffd".encode()


def test_output_items_open_and_close_in_order():
    tools = read_tools([{"type": "function", "name": "f"}], [])
    items = OutputItems(tools)
    kinds = []
    for delta in (Delta(reasoning="hm"), Delta(text="Hi"), Delta(tool_call=ToolCallDelta(0, "x1", "f")),
                  Delta(tool_call=ToolCallDelta(0, arguments='{"a": 1}'))):
        kinds += [e["type"] for e in items.push(delta)]
    kinds += [e["type"] for e in items.close()]
    assert [i["type"] for i in items.items] == ["reasoning", "message", "function_call"]
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 3
    assert items.items[2]["arguments"] == '{"a": 1}' and items.items[2]["call_id"] == "call_x1"


def stored(rid: str, text: str = "x") -> Stored:
    return Stored({"id": rid, "output": []}, [], [Message("user", text)])


def test_the_store_keeps_to_its_count_bytes_and_ttl():
    store = ResponseStore(max_items=2, max_bytes=10_000, ttl_s=60)
    for rid in ("a", "b", "c"):
        store.put(stored(rid))
    assert store.get("a") is None and store.get("b") and store.get("c")  # least recently used went
    store.put(stored("big", "y" * 20_000))
    assert store.get("big") is None  # larger than the whole store
    store.put(stored("d", "z" * 6_000))
    store.put(stored("e", "z" * 6_000))
    assert store.bytes <= 10_000 and store.get("e")
    store.ttl_s = 0
    time.sleep(0.01)
    assert store.get("e") is None and len(store) == 0


def test_item_references_are_found_by_index_and_forgotten_with_their_response():
    store = ResponseStore(max_items=2)
    for rid in ("a", "b", "c"):
        store.put(Stored({"id": rid, "output": [{"id": f"msg_{rid}", "type": "message"}]},
                         [{"id": f"in_{rid}", "type": "message"}], []))
    assert store.item("msg_c")["id"] == "msg_c" and store.item("in_b")["id"] == "in_b"
    assert store.item("msg_a") is None  # its response was dropped
    store.delete("b")
    assert store.item("in_b") is None


async def fake_app_post(path: str, body: dict, **settings) -> httpx.Response:
    spec = ModelSpec(id="fake", source=Source(path="x"), n_ctx=64, parallel=2, n_batch=16, chat_template=PLAIN)
    registry = Registry(ModelsConfig(default="fake", models=(spec,)), ThreadLauncher(),
                        backend="tests.fake_backend:make_backend")
    app = create_app(Settings(**settings), registry=registry)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            return await http.post(path, json=body)


async def test_request_limits_name_the_responses_fields():
    many = [{"type": "reasoning", "summary": []}] * 20 + [{"role": "user", "content": "hi"}]
    for path in ("/v1/responses", "/v1/responses/input_tokens"):
        r = await fake_app_post(path, {"model": "fake", "input": many}, max_messages=10)
        assert (r.status_code, r.json()["error"]["param"]) == (400, "input"), r.text
    r = await fake_app_post("/v1/messages/count_tokens", {"model": "fake", "messages": [
        {"role": "user", "content": "hi"}] * 11}, max_messages=10)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    deep: object = "x"
    for _ in range(200):
        deep = {"a": deep}
    r = await fake_app_post("/v1/responses", {"model": "fake", "input": "hi", "metadata": {}, "tools": [
        {"type": "web_search", "x": deep}]})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("tools.0.x.a.a"), r.text
    r = await fake_app_post("/v1/responses", {"model": "fake", "input": "hi", "max_tool_calls": 0})
    assert r.status_code == 400 and "max_tool_calls" in r.text


async def test_truncation_auto_drops_the_fewest_turns_that_fit():
    turns = []
    for i in range(40):
        turns += [{"role": "user", "content": f"question {i:02d}"}, {"role": "assistant", "content": f"answer {i:02d}"}]
    turns.append({"role": "user", "content": "last"})
    r = await fake_app_post("/v1/responses", {"model": "fake", "input": turns, "truncation": "auto",
                                              "max_output_tokens": 2, "store": False})
    assert r.status_code == 200, r.text
    kept = r.json()["usage"]["input_tokens"]
    assert 64 - 20 <= kept < 64  # the fake model's n_ctx is 64 tokens: close to full, not far below


async def test_a_long_prefill_keeps_the_stream_alive_with_real_events(monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)
    monkeypatch.setenv("FAKE_DELAY", "0.3")  # each token takes 0.3 s: several keep-alive periods
    spec = ModelSpec(id="fake", source=Source(path="x"), n_ctx=64, parallel=2, n_batch=16, chat_template=PLAIN)
    registry = Registry(ModelsConfig(default="fake", models=(spec,)), ThreadLauncher(),
                        backend="tests.fake_backend:make_backend")
    app = create_app(Settings(), registry=registry)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await asyncio.wait_for(http.post("/v1/responses", json={
                "model": "fake", "input": "hi", "stream": True, "max_output_tokens": 3}), 30)
    kinds = [json.loads(line[6:])["type"] for line in r.text.splitlines() if line.startswith("data: ")]
    assert kinds.count("response.in_progress") >= 3  # the first, then keep-alives between tokens
    assert kinds[-1] == "response.incomplete"
