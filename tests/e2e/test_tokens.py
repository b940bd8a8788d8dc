"""The utility endpoints on the real model: tokenize -> detokenize gives the text back byte for
byte, pieces are the exact bytes, and the template text and token counts are what a chat
completion is charged for."""

from __future__ import annotations

import httpx
import pytest

TEXTS = ["Hello, world!", "naïve café, Straße, ÆØÅ", "日本語のテキスト", "emoji 😀🎉👍🏽 and ZWJ 👩‍👩‍👧",
         "Ελληνικά, русский, عربي, עברית", "tabs\tand\nnewlines\r\n  indented", "e\u0301 combining, \u00a0nbsp"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=60)


def tokenize(server, **body) -> list:
    r = post(server, "/tokenize", {"model": "smollm2", **body})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_then_detokenize_gives_the_text_back_exactly(server, text):
    ids = tokenize(server, content=text)
    assert ids and all(isinstance(t, int) for t in ids)
    r = post(server, "/detokenize", {"model": "smollm2", "tokens": ids})
    assert r.status_code == 200 and r.json()["content"] == text


def test_pieces_are_the_exact_bytes_even_where_a_token_splits_a_character(server):
    text = "".join(TEXTS)
    pieces = tokenize(server, content=text, with_pieces=True)
    raw = b"".join(p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"]) for p in pieces)
    assert raw == text.encode()
    assert any(isinstance(p["piece"], list) for p in pieces), "no token split a character: the byte path went untested"
    assert [p["id"] for p in pieces] == tokenize(server, content=text)


@pytest.mark.parametrize("extra", [{}, {"tools": TOOLS}], ids=["plain", "tools"])
def test_the_template_text_tokenizes_to_what_a_chat_completion_is_charged(server, extra):
    chat = {"model": "smollm2", "messages": [{"role": "system", "content": "Answer in one word. ½ ✓"},
                                             {"role": "user", "content": "Capital of France? 🇫🇷"}], **extra}
    prompt = post(server, "/apply-template", chat).json()["prompt"]
    assert "Capital of France? 🇫🇷" in prompt and (not extra or "get_weather" in prompt)
    from_text = tokenize(server, content=prompt, add_special=True)
    assert tokenize(server, messages=chat["messages"], **extra) == from_text
    counted = post(server, "/v1/chat/completions/input_tokens", chat).json()["input_tokens"]
    r = post(server, "/v1/chat/completions", {**chat, "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == counted == len(from_text)


def test_detokenize_accepts_exactly_the_vocabulary(server):
    n_vocab = 49152  # SmolLM2's
    assert post(server, "/detokenize", {"model": "smollm2", "tokens": [0, n_vocab - 1]}).status_code == 200
    for bad in ([n_vocab], [-1], [2**63]):
        r = post(server, "/detokenize", {"model": "smollm2", "tokens": [5, *bad]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "tokens[1]", r.text
    assert tokenize(server, content="still here")
