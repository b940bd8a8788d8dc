import json

from engine.toolparser import ToolCallParser, ToolFormat


def run(fmt: ToolFormat, pieces: list[str]) -> tuple[str, list[dict], ToolCallParser]:
    parser = ToolCallParser(fmt)
    deltas = [d for p in pieces for d in parser.push(p)] + parser.finish()
    content = "".join(d.text for d in deltas)
    calls: list[dict] = []
    for d in deltas:
        if d.tool_call is None:
            continue
        if d.tool_call.name is not None:
            assert d.tool_call.index == len(calls) and d.tool_call.id
            calls.append({"name": d.tool_call.name, "arguments": ""})
        else:
            assert d.tool_call.id is None, "only a call's first delta carries its id"
        calls[d.tool_call.index]["arguments"] += d.tool_call.arguments
    return content, calls, parser


def chars(text: str) -> list[str]:
    return list(text)  # the hardest stream: one character at a time


def test_hermes_call_streamed_char_by_char_never_leaks_into_content():
    text = 'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "n": [1, {"a": "}"}]}}\n</tool_call>'
    content, calls, parser = run(ToolFormat.HERMES, chars(text))
    assert content == "Let me check."
    assert calls == [{"name": "get_weather", "arguments": '{"city": "Paris", "n": [1, {"a": "}"}]}'}]
    assert json.loads(calls[0]["arguments"])["n"][1]["a"] == "}"
    assert parser.calls == 1


def test_parallel_hermes_calls_and_whitespace_between_them():
    text = ('<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
            '<tool_call>\n{"name": "b", "arguments": {"x": "\\"quoted\\""}}\n</tool_call>\n')
    content, calls, _ = run(ToolFormat.HERMES, [text[:30], text[30:77], text[77:]])
    assert content == ""
    assert [c["name"] for c in calls] == ["a", "b"]
    assert json.loads(calls[1]["arguments"]) == {"x": '"quoted"'}


def test_a_partial_tag_is_held_and_released_when_it_is_not_a_tag():
    content, calls, _ = run(ToolFormat.HERMES, ["a <tool", "_cal", "led b"])
    assert (content, calls) == ("a <tool_called b", [])


def test_llama3_json_reply_is_a_call():
    content, calls, _ = run(ToolFormat.LLAMA3, chars(' {"name": "search", "parameters": {"q": "owls"}}'))
    assert content == "" and calls == [{"name": "search", "arguments": '{"q": "owls"}'}]


def test_llama3_plain_text_stays_text():
    content, calls, _ = run(ToolFormat.LLAMA3, ["Owls are ", '{"name": birds}'])
    assert (content, calls) == ('Owls are {"name": birds}', [])


def test_an_unfinished_call_keeps_what_arrived():
    content, calls, parser = run(ToolFormat.HERMES, ['<tool_call>\n{"name": "f", "arguments": {"a": 1'])
    assert content == "" and calls == [{"name": "f", "arguments": '{"a": 1'}]


def test_a_cut_off_opening_tag_after_calls_is_not_content():
    content, calls, _ = run(ToolFormat.HERMES, ['<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\n<tool'])
    assert content == "" and len(calls) == 1
