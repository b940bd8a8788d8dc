"""A Claude-Code-sized set of tools in one tool-calling grammar (built the way engine/tools.py
builds one, with the reply's free text held by GrammarBuilder.text_without): it compiles
quickly in llama.cpp and holds calls to the tools' schemas; and text_without matches exactly
the texts that do not contain its tag."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.gbnf import GrammarBuilder

DRAFT7 = "http://json-schema.org/draft-07/schema#"
TAG = "<tool_call>"


def tool(required: list[str], **props) -> dict:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False,
            "$schema": DRAFT7}


S = {"type": "string"}
STRINGS = {"type": "array", "items": S}
NUM = {"type": "number"}
FLAG = {"type": "boolean"}
OPTION = {"type": "object", "properties": {"label": S, "description": S}, "required": ["label", "description"],
          "additionalProperties": False}
TOOLS = {
    "Task": tool(["description", "prompt", "subagent_type"], description=S, prompt=S, subagent_type=S),
    "Bash": tool(["command"], command=S, timeout=NUM, description=S, run_in_background=FLAG),
    "Glob": tool(["pattern"], pattern=S, path=S),
    "Grep": tool(["pattern"], pattern=S, path=S, glob=S, type=S, multiline=FLAG, head_limit=NUM,
                 output_mode={"type": "string", "enum": ["content", "files_with_matches", "count"]},
                 **{"-B": NUM, "-A": NUM, "-C": NUM, "-n": FLAG, "-i": FLAG}),
    "LS": tool(["path"], path=S, ignore=STRINGS),
    "ExitPlanMode": tool(["plan"], plan=S),
    "Read": tool(["file_path"], file_path=S, offset=NUM, limit=NUM),
    "Edit": tool(["file_path", "old_string", "new_string"], file_path=S, old_string=S, new_string=S,
                 replace_all={"type": "boolean", "default": False}),
    "MultiEdit": tool(["file_path", "edits"], file_path=S, edits={"type": "array", "minItems": 1, "items": {
        "type": "object", "properties": {"old_string": S, "new_string": S, "replace_all": FLAG},
        "required": ["old_string", "new_string"], "additionalProperties": False}}),
    "Write": tool(["file_path", "content"], file_path=S, content={"type": "string", "maxLength": 524288}),
    "NotebookEdit": tool(["notebook_path", "new_source"], notebook_path=S, cell_id=S, new_source=S,
                         cell_type={"type": "string", "enum": ["code", "markdown"]},
                         edit_mode={"type": "string", "enum": ["replace", "insert", "delete"]}),
    "WebFetch": tool(["url", "prompt"], url={"type": "string", "format": "uri"}, prompt=S),
    "TodoWrite": tool(["todos"], todos={"type": "array", "items": {"type": "object", "properties": {
        "content": {"type": "string", "minLength": 1},
        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
        "activeForm": {"type": "string", "minLength": 1}}, "required": ["content", "status", "activeForm"],
        "additionalProperties": False}}),
    "WebSearch": tool(["query"], query={"type": "string", "minLength": 2}, allowed_domains=STRINGS,
                      blocked_domains=STRINGS),
    "BashOutput": tool(["bash_id"], bash_id=S, filter=S),
    "KillShell": tool(["shell_id"], shell_id=S),
    "SlashCommand": tool(["command"], command=S),
    "Skill": tool(["command"], command=S),
    "AskUserQuestion": tool(["questions"], questions={"type": "array", "minItems": 1, "maxItems": 4, "items": {
        "type": "object", "properties": {"question": S, "header": {"type": "string", "maxLength": 12},
                                         "options": {"type": "array", "minItems": 2, "maxItems": 4, "items": OPTION},
                                         "multiSelect": FLAG},
        "required": ["question", "header", "options", "multiSelect"], "additionalProperties": False}}),
    "mcp__ide__getDiagnostics": tool([], uri={"type": "string", "description": "File URI"}),
    "mcp__ide__executeCode": tool(["code"], code=S),
    "mcp__memory__store": tool(["key", "value"], key=S, value={"description": "Any JSON value to store"}),
    "mcp__db__query": tool(["sql"], sql=S, params={"type": "array", "items": {"description": "a parameter"}},
                           limit={"type": "integer", "minimum": 1, "maximum": 1000}),
    "mcp__github__create_issue": tool(["owner", "repo", "title"], owner=S, repo=S, title=S, body=S,
                                      labels=STRINGS, milestone={"anyOf": [NUM, {"type": "null"}]}),
}


def tool_grammar(tools: dict[str, dict]) -> str:
    """Free text, then optionally up to 8 calls: what engine/tools.py asks for in "auto" mode."""
    g = GrammarBuilder()
    names = []
    for i, (name, schema) in enumerate(tools.items()):
        args = g.add_schema(schema, f"tool{i}-args", f"tools[{i}].function.parameters")
        g.add_rule(f"tool{i}", f'{g.literal(json.dumps({"name": name})[:-1] + ", " + chr(34) + "arguments" + chr(34) + ": ")} {args} "}}"')
        names.append(f"tool{i}")
    g.add_rule("call", " | ".join(names))
    g.add_rule("call-block", f'{g.literal(TAG + chr(10))} call {g.literal(chr(10) + "</tool_call>")}')
    g.add_rule("calls", 'call-block ("\\n" call-block){0,7}')
    text = g.text_without("free-text", TAG)
    g.add_rule("root", f"{text} calls?")
    return g.build()


def test_the_tool_set_compiles_quickly(worker, capsys):
    start = time.perf_counter()
    gbnf = tool_grammar(TOOLS)
    cold = time.perf_counter() - start  # mostly jsonschema's check of each schema, then remembered
    start = time.perf_counter()
    tool_grammar(TOOLS)
    warm = time.perf_counter() - start
    compiled = min(worker.compile(gbnf)["seconds"] for _ in range(5))
    assert worker.compile(gbnf)["ok"]
    with capsys.disabled():
        print(f"\n{len(TOOLS)} tools: grammar built in {cold * 1000:.1f} ms (again: {warm * 1000:.1f} ms), "
              f"{len(gbnf)} characters, {gbnf.count(chr(10))} rules; llama.cpp compiles it in "
              f"{compiled * 1000:.2f} ms")
    assert cold < 1.0 and warm < 0.2 and compiled < 0.2


def call(name: str, arguments: dict) -> str:
    return f'{TAG}\n{json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)}\n</tool_call>'


GOOD = [
    "Just an answer, no call.",
    "",
    "Almost <tool_cal and <tool_call without the end",
    "Let me look." + call("Bash", {"command": "ls -la", "timeout": 1000}),
    call("Write", {"file_path": "/tmp/a.txt", "content": "x" * 3000}),
    call("MultiEdit", {"file_path": "a.py", "edits": [{"old_string": "a", "new_string": "b", "replace_all": True}]}),
    call("mcp__memory__store", {"key": "k", "value": {"nested": [1, None, "😀"]}}) + "\n"
    + call("TodoWrite", {"todos": [{"content": "c", "status": "pending", "activeForm": "doing c"}]}),
    call("AskUserQuestion", {"questions": [{"question": "Which?", "header": "Pick one", "options": [
        {"label": "A", "description": "a"}, {"label": "B", "description": "b"}], "multiSelect": False}]}),
    call("mcp__github__create_issue", {"owner": "o", "repo": "r", "title": "t", "milestone": None}),
]
BAD = [
    call("Bash", {"timeout": 1}),  # a required argument is missing
    call("Nope", {}),  # no such tool
    call("Bash", {"command": "ls", "extra": 1}),  # additionalProperties: false
    call("Grep", {"pattern": "x", "output_mode": "lines"}),  # not in the enum
    call("AskUserQuestion", {"questions": [{"question": "Q", "header": "a header too long", "options": [
        {"label": "A", "description": "a"}, {"label": "B", "description": "b"}], "multiSelect": False}]}),
    call("Bash", {"command": "ls"}) + " and text after the calls",
    "x<tool_call></tool_call>",  # the token "></" after "<tool_call": refused, not a crash
    "<tool_call>\nnot json\n</tool_call>",
]


def test_calls_are_held_to_the_tools_schemas(worker):
    gbnf = tool_grammar(TOOLS)
    assert worker.accept(gbnf, GOOD + BAD) == [True] * len(GOOD) + [False] * len(BAD)


# --- text_without ---------------------------------------------------------------------------------

def without(tag: str) -> str:
    g = GrammarBuilder()
    g.add_rule("root", g.text_without("text", tag))
    return g.build()


@pytest.mark.parametrize("tag", ["<tool_call>", "abab", "aab", "x", "<|im_end|>", "😀\n😀"])
def test_text_without_is_one_rule_per_state_in_tail_position(tag):
    rules = dict(line.split(" ::= ", 1) for line in without(tag).splitlines())
    states = [name for name in rules if name == "text" or name.startswith("text-")]
    assert len(states) == len(tag)
    # An empty alternative (the text may end in any state), then alternatives that each take one
    # character (a literal or a class) and go on to a state: right recursion only.
    step = r'(?:"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]) text(?:-\d+)?'
    for name in states:
        assert re.fullmatch(rf"\| {step}(?: \| {step})*", rules[name]), rules[name]


def test_free_text_samples_about_as_fast_as_a_plain_class(worker):
    # One alternative per tag character would make llama.cpp keep a stack for each of them at
    # every character of every candidate token: ~30x slower than [^<]* (211 ms against 7 ms a
    # token, measured); grouped by target state it is on par.
    plain = worker.request(op="sample_time", gbnf="root ::= [^<]*\n", prefix="Hello there")
    free = worker.request(op="sample_time", gbnf=without(TAG), prefix="Hello there")
    tools = worker.request(op="sample_time", gbnf=tool_grammar(TOOLS), prefix="Hello there")
    assert free["seconds"] < 3 * plain["seconds"] and tools["seconds"] < 3 * plain["seconds"]


@pytest.mark.parametrize("tag, alphabet", [("<tool_call>", "<tool_ca>\nx"), ("abab", "abx"), ("aab", "ab"),
                                           ("😀\n😀", "😀\na")])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(data=st.data())
def test_text_without_matches_exactly_the_texts_without_the_tag(worker, tag, alphabet, data):
    pieces = st.one_of(st.sampled_from(list(alphabet)), st.just(tag[:-1]), st.just(tag), st.just(tag[1:]))
    texts = data.draw(st.lists(st.lists(pieces, max_size=12).map("".join), min_size=8, max_size=8))
    assert worker.accept(without(tag), texts) == [tag not in text for text in texts], texts
