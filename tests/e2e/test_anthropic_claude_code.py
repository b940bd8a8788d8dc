"""The Messages API as Claude Code uses it (request shapes captured from @anthropic-ai/claude-code
2.1.328): beta fields, mid-conversation system turns, the billing header, tool search, the usage
in message_start, its model names; and the stream renderer in process."""

from __future__ import annotations

import json
import uuid

import anthropic
import httpx
import pytest

from .test_anthropic import ASK, GREEDY, MODEL, MODEL_ID, error_of

BETA_HEADERS = {"anthropic-version": "2023-06-01", "authorization": "Bearer dummy", "anthropic-beta": (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "mid-conversation-tool-changes-2026-07-01,advanced-tool-use-2025-11-20,effort-2025-11-24")}
EPHEMERAL = {"type": "ephemeral"}


def billing(suffix: str) -> dict:
    return {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.328.{suffix}; cc_entrypoint=sdk-cli;"}


def long_system(tag: str) -> str:
    rules = "\n".join(f"Rule {i}: keep answer {i} short, plain and polite, and never repeat rule {i}." for i in range(40))
    return f"You are the assistant of project {tag}.\n{rules}"


def claude_code_body(tag: str, **over) -> dict:
    """A small request with every feature Claude Code's requests carry."""
    tools = [
        {"name": "Bash", "description": "Run a command.", "cache_control": EPHEMERAL, "strict": True,
         "eager_input_streaming": True, "input_examples": [{"command": "ls"}],
         "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                          "properties": {"command": {"type": "string", "maxLength": 524288},
                                         "extra": {"description": "anything at all"}},
                          "required": ["command"], "additionalProperties": False}},
        {"name": "ToolSearch", "description": "Load deferred tools.",
         "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
        {"name": "WebFetch", "description": "Fetch a page.", "defer_loading": True,
         "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}}},
    ]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\nBe brief.\n</system-reminder>\n"},
                                     {"type": "text", "text": f"Find a web tool ({tag})."}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\nLinux.", "cache_control": EPHEMERAL}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch",
                                           "input": {"query": "select:WebFetch"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
                                      "cache_control": EPHEMERAL,
                                      "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]}]},
        {"role": "system", "content": [
            {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": {
                "name": "CronList", "description": "List jobs.", "input_schema": {"type": "object"}}}},
            {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "ScheduleWakeup"}},
            {"type": "text", "text": "Now answer.", "cache_control": EPHEMERAL}]},
    ]
    body = {
        "model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "stream": False,
        "system": [billing(tag[:3]), {"type": "text", "text": "You are a Claude agent.", "cache_control": EPHEMERAL},
                   {"type": "text", "text": "\nHelp the user.", "cache_control": EPHEMERAL}],
        "messages": messages, "tools": tools,
        "metadata": {"user_id": json.dumps({"device_id": "d", "account_uuid": "", "session_id": tag})},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"}, "temperature": 0,
    }
    return {**body, **over}


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}?beta=true", json=body, headers=BETA_HEADERS, timeout=120)


def sse_events(raw: str) -> list[tuple[str, dict]]:
    """(event name, data) per SSE frame; comments are left out."""
    events = []
    for frame in raw.split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if lines:
            events.append((lines[0].split(": ", 1)[1], json.loads(lines[1].split(": ", 1)[1])))
    return events


def test_a_claude_code_request_is_served_streamed_not_streamed_and_counted(server):
    tag = uuid.uuid4().hex
    body = claude_code_body(tag, max_tokens=8)
    counted = post(server, "/v1/messages/count_tokens", {k: body[k] for k in (
        "model", "system", "messages", "tools", "thinking", "context_management", "output_config")})
    assert counted.status_code == 200, counted.text
    whole = post(server, "/v1/messages", body)
    assert whole.status_code == 200, whole.text
    message = whole.json()
    assert message["model"] == MODEL_ID and message["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    usage = message["usage"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == counted.json()["input_tokens"]
    streamed = post(server, "/v1/messages", {**body, "stream": True})
    assert streamed.status_code == 200, streamed.text
    names = [name for name, _ in sse_events(streamed.text)]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]


def test_system_turns_inside_messages_are_folded_in_place(anthropic_client):
    user = {"role": "user", "content": f"Conversation {uuid.uuid4().hex}: name a color."}
    system = {"role": "system", "content": [{"type": "text", "text": "Answer in French.", "cache_control": EPHEMERAL}]}
    first = anthropic_client.messages.create(model=MODEL, max_tokens=4, messages=[user], extra_body=GREEDY)
    last = anthropic_client.messages.create(model=MODEL, max_tokens=4, messages=[user, system], extra_body=GREEDY)
    # As the last message, the model answers it; in place, what came before it is the cached prefix.
    assert last.usage.output_tokens > 0
    computed = first.usage.input_tokens + first.usage.cache_read_input_tokens
    assert last.usage.cache_read_input_tokens >= computed - 3
    middle = [user, {"role": "system", "content": "Answer in French."}, {"role": "assistant", "content": "Rouge."},
              {"role": "user", "content": "And a fruit?"}]
    m = anthropic_client.messages.create(model=MODEL, max_tokens=4, messages=middle, extra_body=GREEDY)
    assert m.usage.cache_read_input_tokens >= computed - 3
    without = anthropic_client.messages.count_tokens(model=MODEL, messages=[middle[0], *middle[2:]]).input_tokens
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens > without + 3


def test_the_billing_header_block_is_dropped_so_the_cache_serves_the_system_prompt(server):
    system = long_system(uuid.uuid4().hex)
    ask = [{"role": "user", "content": "say hi"}]

    def body(suffix: str) -> dict:
        return {"model": MODEL, "max_tokens": 2, "messages": ask,
                "system": [billing(suffix), {"type": "text", "text": system, "cache_control": EPHEMERAL}]}

    first = post(server, "/v1/messages", body("593"))
    assert first.status_code == 200, first.text
    second = post(server, "/v1/messages", body("c5e"))
    counted = post(server, "/v1/messages/count_tokens", {k: v for k, v in body("c5e").items() if k != "max_tokens"})
    plain = post(server, "/v1/messages/count_tokens", {"model": MODEL, "messages": ask, "system": system})
    total = counted.json()["input_tokens"]
    assert total == plain.json()["input_tokens"]
    assert second.json()["usage"]["cache_read_input_tokens"] >= 0.9 * total


def test_tool_reference_blocks_become_text_and_images_in_tool_results_are_refused(anthropic_client):
    def turn(content) -> list[dict]:
        return [{"role": "user", "content": "Load the fetch tool."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "ToolSearch",
                                                   "input": {"query": "fetch"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": content}]}]

    empty = anthropic_client.messages.count_tokens(model=MODEL, messages=turn("")).input_tokens
    referenced = anthropic_client.messages.count_tokens(model=MODEL, messages=turn(
        [{"type": "text", "text": "Found:"}, {"type": "tool_reference", "tool_name": "WebFetch"}])).input_tokens
    assert referenced > empty + 2
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        anthropic_client.messages.create(model=MODEL, max_tokens=2, messages=turn([image]))
    assert "messages.2.content.0.content.0" in error_of(info.value)["message"]


def test_deferred_tools_stay_out_of_the_prompt_until_referenced(anthropic_client):
    schema = {"type": "object", "properties": {"url": {"type": "string"}}}
    core = {"name": "Read", "description": "Read a file.", "input_schema": schema}
    deferred = {"name": "WebFetch", "description": "Fetch a page from the web.", "input_schema": schema,
                "defer_loading": True}
    count = lambda tools: anthropic_client.messages.count_tokens(  # noqa: E731
        model=MODEL, messages=ASK, tools=tools).input_tokens
    assert count([core, deferred]) == count([core]) < count([core, {**deferred, "defer_loading": False}])


def test_context_management_and_other_beta_fields_are_accepted(server):
    body = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"},
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "metadata": {"user_id": "{\"device_id\":\"x\"}"}}
    assert post(server, "/v1/messages", body).status_code == 200
    refused = post(server, "/v1/messages", {**body, "frobnicate": 1})
    assert refused.status_code == 400 and "frobnicate" in refused.json()["error"]["message"]


def test_message_start_usage_is_the_final_usage_on_a_cached_prompt(server):
    body = {"model": MODEL, "max_tokens": 3, "stream": True, "system": long_system(uuid.uuid4().hex),
            "messages": ASK, "temperature": 0}
    post(server, "/v1/messages", body)
    events = sse_events(post(server, "/v1/messages", body).text)
    start = next(data for name, data in events if name == "message_start")["message"]["usage"]
    final = next(data for name, data in events if name == "message_delta")["usage"]
    assert start["cache_read_input_tokens"] > 0
    keys = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    assert {k: start[k] for k in keys} == {k: final[k] for k in keys}


def test_claude_model_names_reach_the_default_model(anthropic_client, server):
    for name in ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"):
        m = anthropic_client.messages.create(model=name, max_tokens=1, messages=ASK)
        assert m.model == MODEL_ID
    card = next(c for c in httpx.get(f"{server.base_url}/v1/models").json()["data"] if c["id"] == MODEL_ID)
    assert "claude-*" in card["aliases"]
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="gpt-4o", max_tokens=1, messages=ASK)


def test_message_start_waits_for_the_slot_with_comments_then_pings():
    """In process: the renderer sends message_start once the engine has admitted the request and
    knows what the cache serves; until then only SSE comments, which no client takes for an event."""
    from engine import Delta, FinishReason, Usage
    from server.anthropic.render import EventRenderer

    renderer = EventRenderer(MODEL_ID, 31)
    waiting = b"".join(renderer.start()) + renderer.keepalive()
    assert waiting and all(line.startswith(b":") for line in waiting.split(b"\n") if line)
    admitted = sse_events(b"".join(renderer.on_delta(Delta(usage=Usage(31, 0, 30)))).decode())
    assert admitted[0][0] == "message_start"
    usage = admitted[0][1]["message"]["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (1, 30)
    assert renderer.keepalive().startswith(b"event: ping")
    final = sse_events(b"".join(renderer.on_finish(Delta(text="hi", finish_reason=FinishReason.STOP,
                                                           usage=Usage(31, 1, 30)))).decode())
    assert [name for name, _ in final][-2:] == ["message_delta", "message_stop"]
    assert final[-2][1]["usage"]["input_tokens"] == 1


def test_thinking_display_omitted_keeps_the_block_without_its_text():
    import pydantic

    from engine import Delta, FinishReason, Usage
    from server.anthropic.render import EventRenderer, message_body
    from server.anthropic.protocol import MessagesRequest

    body = {"model": MODEL, "max_tokens": 8, "messages": ASK}
    for display in ("omitted", "summarized"):
        request = MessagesRequest.model_validate({**body, "thinking": {"type": "adaptive", "display": display}})
        assert request.thinking.display == display
    with pytest.raises(pydantic.ValidationError):
        MessagesRequest.model_validate({**body, "thinking": {"type": "adaptive", "display": "full"}})

    deltas = [Delta(usage=Usage(5, 0, 0)), Delta(reasoning="secret"),
              Delta(text="hi", finish_reason=FinishReason.STOP, usage=Usage(5, 2, 0))]
    assert message_body(MODEL_ID, deltas, omit_thinking=True)["content"] == [
        {"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": "hi"}]
    assert message_body(MODEL_ID, deltas)["content"][0]["thinking"] == "secret"
    renderer = EventRenderer(MODEL_ID, 5, omit_thinking=True)
    frames = b"".join(renderer.on_delta(deltas[0]) + renderer.on_delta(deltas[1]) + renderer.on_finish(deltas[2]))
    assert b"secret" not in frames and b'"type":"thinking"' in frames
