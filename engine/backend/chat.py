"""Which chat format a GGUF speaks when it carries no Jinja template, through llama.cpp's own
built-in templates (llama_chat_apply_template)."""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Any

import llama_cpp as ll

log = logging.getLogger(__name__)

GGUF, BUILTIN, FALLBACK = "gguf", "builtin", "fallback"
# Architectures whose built-in template llama.cpp names differently (or only by family).
ARCH_TEMPLATES = {"gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml", "qwen2moe": "chatml", "qwen3": "chatml",
                  "qwen3moe": "chatml", "exaone": "exaone3", "chatglm": "chatglm4", "phimoe": "phi3"}
# A "llama" architecture could be Llama 2, Llama 3 or a derivative: its pre-tokenizer tells.
PRE_TOKENIZER_TEMPLATES = {"llama-bpe": "llama3", "smollm": "chatml", "qwen2": "chatml"}


@functools.cache
def builtin_names() -> frozenset[str]:
    n = ll.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * n)()
    ll.llama_chat_builtin_templates(names, n)
    return frozenset(name.decode() for name in names)


def detect(model: ll.llama_model_p, arch: str, pre_tokenizer: str = "") -> tuple[str, str]:
    """(GGUF, jinja source) | (BUILTIN, llama.cpp template name) | (FALLBACK, "chatml")."""
    raw = ll.llama_model_chat_template(model, None)
    if raw:
        text = raw.decode("utf-8", errors="replace")
        # llama.cpp answers some template-less models with a built-in name of its own.
        return (BUILTIN, text) if text in builtin_names() else (GGUF, text)
    name = arch if arch in builtin_names() else ARCH_TEMPLATES.get(arch) or PRE_TOKENIZER_TEMPLATES.get(pre_tokenizer)
    if name in builtin_names():
        return BUILTIN, name
    return FALLBACK, "chatml"


def apply_builtin(name: str, messages: list[dict[str, Any]], add_assistant: bool) -> str:
    """Render with llama.cpp's built-in template `name`: roles and text only."""
    keep = [(str(m["role"]).encode(), str(m.get("content") or "").encode()) for m in messages]
    chat = (ll.llama_chat_message * len(keep))()
    for entry, (role, content) in zip(chat, keep):
        entry.role, entry.content = role, content
    size = 4 * sum(len(r) + len(c) for r, c in keep) + 1024
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = ll.llama_chat_apply_template(name.encode(), chat, len(keep), add_assistant, buf, size)
        if n < 0:
            raise ValueError(f"llama.cpp's built-in template {name!r} cannot render this conversation")
        if n <= size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n + 1
    raise ValueError("the rendered prompt did not fit")
