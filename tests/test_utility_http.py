"""/tokenize, /detokenize, /apply-template, /v1/chat/completions/input_tokens and the playground's
routes in-process, over the real worker code on a thread with the fake backend (whose tokens are
the text's bytes, so every expected value follows from the input)."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from engine import MAX_LISTED_TOKENS, ModelsConfig, Registry, ThreadLauncher
from server.app import create_app
from server.settings import Settings

from .test_http import FAKE, spec


@contextlib.asynccontextmanager
async def serving(settings: Settings):
    registry = Registry(ModelsConfig(default="fake", models=(spec(),)), ThreadLauncher(), backend=FAKE)
    app = create_app(settings, registry=registry)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


@pytest.fixture
async def http():
    async with serving(Settings()) as client:
        yield client


def error(r: httpx.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


async def test_tokenize_lists_ids_and_byte_exact_pieces(http):
    text = "aé€"  # the fake's tokens are bytes: é and € end up split mid-character
    r = await http.post("/tokenize", json={"model": "f", "content": text, "with_pieces": True})
    assert r.status_code == 200, r.text
    tokens = r.json()["tokens"]
    assert [t["id"] for t in tokens] == list(text.encode())
    assert tokens[0]["piece"] == "a" and tokens[1]["piece"] == [0xC3]  # not UTF-8 alone: its byte values
    pieces = b"".join(t["piece"].encode() if isinstance(t["piece"], str) else bytes(t["piece"]) for t in tokens)
    assert pieces == text.encode()
    plain = await http.post("/tokenize", json={"model": "f", "content": text})
    assert plain.json() == {"model": "fake", "tokens": list(text.encode())}


async def test_detokenize_reverses_tokenize_and_refuses_ids_outside_the_vocabulary(http):
    text = "héllo, wörld"
    ids = (await http.post("/tokenize", json={"model": "f", "content": text})).json()["tokens"]
    r = await http.post("/detokenize", json={"model": "f", "tokens": ids})
    assert r.json() == {"model": "fake", "content": text}
    assert error(await http.post("/detokenize", json={"model": "f", "tokens": [97, 256]}))["param"] == "tokens[1]"
    assert error(await http.post("/detokenize", json={"model": "f", "tokens": [-1]}))["param"] == "tokens[0]"
    assert error(await http.post("/detokenize", json={"model": "f", "tokens": [True]}))["param"] == "tokens.0"
    assert error(await http.post("/detokenize", json={"model": "f", "tokens": ["97"]}))["param"] == "tokens.0"
    too_many = await http.post("/detokenize", json={"model": "f", "tokens": [97] * (MAX_LISTED_TOKENS + 1)})
    assert error(too_many)["param"] == "tokens"


async def test_tokenize_needs_exactly_one_of_content_and_messages(http):
    messages = [{"role": "user", "content": "hi"}]
    for body in ({"model": "f"}, {"model": "f", "content": "x", "messages": messages}):
        assert error(await http.post("/tokenize", json=body))["param"] == "content"
    assert error(await http.post("/tokenize", json={"model": "f", "messages": []}))["param"] == "messages"
    assert error(await http.post("/tokenize", json={"model": "f", "content": 5}))["param"] == "content"
    assert error(await http.post("/tokenize", json={"model": "nope", "content": "x"}), 404)["param"] == "model"
    r = await http.post("/tokenize", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert error(r)["type"] == "invalid_request_error"


async def test_template_tokens_and_counts_agree_with_a_chat_completion(http):
    chat = {"model": "f", "seed": 1, "messages": [{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": "hi there"}]}
    prompt = (await http.post("/apply-template", json=chat)).json()["prompt"]
    assert prompt == "be briefhi there"  # the fake's template joins the contents
    ids = (await http.post("/tokenize", json=chat)).json()["tokens"]
    count = (await http.post("/v1/chat/completions/input_tokens", json=chat)).json()
    usage = (await http.post("/v1/chat/completions", json=chat)).json()["usage"]
    assert ids == list(prompt.encode())
    assert count == {"object": "chat.completion.input_tokens", "model": "fake", "input_tokens": len(ids)}
    assert usage["prompt_tokens"] == len(ids)


async def test_utility_routes_apply_the_message_limit():
    async with serving(Settings(max_messages=2)) as http:
        chat = {"model": "f", "messages": [{"role": "user", "content": "x"}] * 3}
        for path in ("/tokenize", "/apply-template", "/v1/chat/completions/input_tokens"):
            assert error(await http.post(path, json=chat))["param"] == "messages"


async def test_the_page_is_open_when_the_api_needs_a_key():
    async with serving(Settings(api_keys=("k",))) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for name in ("app.js", "markdown.js", "style.css"):
            assert (await http.get(f"/ui/{name}")).status_code == 200
            assert f"/ui/{name}" in page.text
        assert error(await http.get("/ui/settings.py"), 404)
        assert error(await http.get("/v1/models"), 401)["code"] == "invalid_api_key"
        assert error(await http.post("/tokenize", json={"model": "f", "content": "x"}), 401)
        r = await http.post("/tokenize", json={"model": "f", "content": "x"}, headers={"authorization": "Bearer k"})
        assert r.json()["tokens"] == [ord("x")]


async def test_no_ui_turns_the_page_off():
    async with serving(Settings(no_ui=True)) as http:
        assert error(await http.get("/"), 404)
        assert error(await http.get("/ui/app.js"), 404)
        assert (await http.post("/tokenize", json={"model": "f", "content": "x"})).status_code == 200
