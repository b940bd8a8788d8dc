"""Renders chat messages with the model's Jinja chat template, in a sandbox."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InvalidRequest

# Used only when a GGUF carries no template and models.yaml names none.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False) -> str:
    # Jinja's own tojson escapes <, > and & for HTML, which would change the prompt's text.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A compiled chat template plus the special-token texts that templates expect."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self.source = source or CHATML
        self._template = env.from_string(self.source)
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: list[dict[str, Any]], tools: list[dict] | None = None, thinking: bool = True) -> str:
        """The prompt text. A trailing assistant message is continued, not closed."""
        if not messages:
            raise InvalidRequest("messages must not be empty", param="messages")
        last = messages[-1]
        if last["role"] != "assistant" or last.get("tool_calls"):
            return self._render(messages, True, tools, thinking)
        if not last["content"]:
            return self._render(messages[:-1], True, tools, thinking)
        # Render the whole conversation, then cut right after the assistant's text so the
        # template's end-of-turn markers are dropped and the model carries on from there.
        text = self._render(messages, False, tools, thinking)
        at = text.rfind(last["content"])
        if at < 0:
            raise InvalidRequest("the chat template does not allow continuing the final assistant message", param="messages")
        return text[: at + len(last["content"])]

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict] | None,
                thinking: bool = True) -> str:
        try:
            return self._template.render(
                messages=messages,
                tools=tools,
                enable_thinking=thinking,  # Qwen3-style templates turn reasoning off with it
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except jinja2.exceptions.TemplateError as exc:
            # The template itself refuses this conversation (e.g. roles out of order).
            raise InvalidRequest(f"chat template: {exc}", param="messages") from exc


class BuiltinTemplate(ChatTemplate):
    """One of llama.cpp's built-in chat formats (for a GGUF without a Jinja template), rendered
    by llama.cpp itself: roles and text only, so tools are described in the system prompt."""

    def __init__(self, name: str, apply: Callable[[str, list[dict[str, Any]], bool], str],
                 bos_token: str = "", eos_token: str = ""):
        self.source = name
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._apply = apply

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict] | None,
                thinking: bool = True) -> str:
        try:
            return self._apply(self.source, messages, add_generation_prompt)
        except ValueError as exc:
            raise InvalidRequest(f"chat template: {exc}", param="messages") from exc
