"""Tools and structured outputs: how a request's tools reach the prompt, and the grammar that
holds the model to a valid call or to a JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .gbnf import GrammarBuilder
from .errors import InvalidRequest
from .toolparser import CLOSE_TAG, OPEN_TAG, ToolFormat
from .types import GenerateRequest, Message, OutputKind, ToolChoiceMode, ToolSpec

GENERIC_INSTRUCTIONS = (
    "You can call the following tools. Their signatures are JSON Schemas, inside <tools></tools>:\n"
    "<tools>\n{tools}\n</tools>\n"
    "To call a tool, reply with one <tool_call></tool_call> block per call holding a JSON object "
    'with the tool\'s name and its arguments: <tool_call>\n{{"name": "<tool name>", "arguments": '
    "{{<arguments>}}}}\n</tool_call>\n{when}"
)
WHEN = {ToolChoiceMode.AUTO: "Call a tool only when it helps; otherwise answer directly.",
        ToolChoiceMode.REQUIRED: "You must call a tool now.",
        ToolChoiceMode.FUNCTION: "You must call the tool `{name}` now."}


# A model that never stops adding calls (small ones loop) is cut off here by the grammar, which
# then only allows the end of the turn. Capable models stop well before it.
MAX_PARALLEL_CALLS = 8


@dataclass(slots=True, frozen=True)
class Grammar:
    gbnf: str


@dataclass(slots=True)
class Tooling:
    """What a model's chat template can do with tools."""

    fmt: ToolFormat = ToolFormat.HERMES
    native: bool = False  # the template renders `tools` and `tool_calls` itself

    @classmethod
    def for_template(cls, source: str) -> Tooling:
        if "<tool_call>" in source:
            return cls(ToolFormat.HERMES, native=True)
        if "<|python_tag|>" in source or "ipython" in source:
            return cls(ToolFormat.LLAMA3, native=True)
        return cls(ToolFormat.HERMES, native=False)

    def uses_tools(self, request: GenerateRequest) -> bool:
        return bool(request.tools) and request.tool_choice.mode is not ToolChoiceMode.NONE

    def prepare(self, request: GenerateRequest) -> tuple[list[dict[str, Any]], list[dict] | None]:
        """Messages as template dicts, and the `tools` value for the template."""
        if self.native:
            tools = [tool_dict(t) for t in request.tools] if self.uses_tools(request) else None
            return [native_message(m) for m in request.messages], tools
        messages = [generic_message(m) for m in request.messages]
        if self.uses_tools(request):
            choice = request.tool_choice
            instructions = GENERIC_INSTRUCTIONS.format(
                tools="\n".join(json.dumps(tool_dict(t)) for t in request.tools),
                when=WHEN[choice.mode].format(name=choice.name))
            if messages and messages[0]["role"] == "system":
                messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{instructions}"}
            else:
                messages.insert(0, {"role": "system", "content": instructions})
        return messages, None

    def grammar(self, request: GenerateRequest) -> Grammar | None:
        """The grammar this request's output must follow, or None for free text. With tool_choice
        auto the model writes freely, but the grammar holds from the first token: text that never
        opens a call, then (optionally) calls that match their schemas. (llama.cpp's lazy
        grammars, which start constraining once a trigger appears, abort the process when the
        token that completes the trigger carries text the grammar refuses.)"""
        check_request(request)
        calls = self.uses_tools(request)
        fmt = request.response_format
        if not calls and fmt.kind is OutputKind.TEXT:
            return None
        g = GrammarBuilder()
        alternatives = []
        if calls:
            self._add_calls(g, request)
            alternatives.append("calls")
        if fmt.kind is not OutputKind.TEXT:
            schema = fmt.schema if fmt.kind is OutputKind.JSON_SCHEMA else {"type": "object"}
            alternatives.append(g.add_schema(schema, "answer", fmt.param))
        if calls and request.tool_choice.mode is ToolChoiceMode.AUTO and fmt.kind is OutputKind.TEXT:
            g.add_rule("root", self._text_then_calls(g))
        else:
            g.add_rule("root", " | ".join(alternatives))
        return Grammar(g.build())

    def _text_then_calls(self, g: GrammarBuilder) -> str:
        if self.fmt is ToolFormat.HERMES:
            return f"{g.text_without('free-text', OPEN_TAG)} calls?"
        # Llama-3 calls are the whole reply: a reply that starts with "{" is a call.
        g.add_rule("free-text", r"[^{ \t\n] [^\x00]*")
        return r"[ \t\n]* (calls | free-text)?"

    def _add_calls(self, g: GrammarBuilder, request: GenerateRequest) -> None:
        choice = request.tool_choice
        tools = [t for t in request.tools if choice.mode is not ToolChoiceMode.FUNCTION or t.name == choice.name]
        key = "arguments" if self.fmt is ToolFormat.HERMES else "parameters"
        names = []
        for i, tool in enumerate(tools):
            args = g.add_schema(tool.parameters, f"tool{i}-args", tool.param)
            head = g.literal(f'{{"name": {json.dumps(tool.name)}, "{key}": ')
            g.add_rule(f"tool{i}", f'{head} {args} "}}"')
            names.append(f"tool{i}")
        g.add_rule("call", " | ".join(names))
        if self.fmt is ToolFormat.HERMES:
            g.add_rule("call-block", f'{g.literal(OPEN_TAG + chr(10))} call {g.literal(chr(10) + CLOSE_TAG)}')
            limit = min(MAX_PARALLEL_CALLS, request.max_tool_calls or MAX_PARALLEL_CALLS)
            more = f' ("\\n" call-block){{0,{limit - 1}}}' if request.parallel_tool_calls and limit > 1 else ""
            g.add_rule("calls", f"call-block{more}")
        else:  # Llama-3 JSON calls are the whole reply: one call
            g.add_rule("calls", "call")


def check_request(request: GenerateRequest) -> None:
    choice, fmt = request.tool_choice, request.response_format
    forced = choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)
    if forced and not request.tools:
        raise InvalidRequest("tool_choice requires a call, but no tools were given", param="tool_choice")
    if choice.mode is ToolChoiceMode.FUNCTION and choice.name not in {t.name for t in request.tools}:
        raise InvalidRequest(f"tool_choice names '{choice.name}', which is not among the tools", param="tool_choice")
    if forced and fmt.kind is not OutputKind.TEXT:
        raise InvalidRequest("response_format cannot be combined with a forced tool call: the reply must be the "
                             "call itself, so it cannot also be the requested JSON", param="response_format")
    names = [t.name for t in request.tools]
    if len(set(names)) != len(names):
        raise InvalidRequest("tool names must be unique", param="tools")


def tool_dict(tool: ToolSpec) -> dict:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}


def native_message(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.reasoning:
        d["reasoning_content"] = m.reasoning
    if m.tool_calls:
        # Templates (Qwen, Llama 3) print `arguments | tojson`: they expect an object, not text.
        d["tool_calls"] = [{"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": parse_arguments(c.arguments)}}
                           for c in m.tool_calls]
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        d["name"] = m.name
    return d


def generic_message(m: Message) -> dict[str, Any]:
    """For templates without tools: calls and results become text in the generic format."""
    content = m.content
    if m.tool_calls:
        blocks = "\n".join(f"{OPEN_TAG}\n{json.dumps({'name': c.name, 'arguments': parse_arguments(c.arguments)})}"
                           f"\n{CLOSE_TAG}" for c in m.tool_calls)
        content = f"{content}\n{blocks}" if content else blocks
    if m.role == "tool":
        return {"role": "tool", "content": f"<tool_response>\n{content}\n</tool_response>"}
    return {"role": m.role, "content": content}


def parse_arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return arguments
