"""Hostile input at the HTTP edge: logit_bias keys, lone surrogates anywhere in a JSON body, deep
or non-object bodies, odd model-id paths, and rate-limit buckets that a made-up token must not
reset. In-process, against a stub registry: no model is loaded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from types import SimpleNamespace

import httpx
import pytest

from engine import GenerateRequest, ModelNotFound, Overloaded, SamplingParams
from server.app import create_app
from server.settings import Settings

MODEL = "stub"


class StubEngine:
    """Records each request, 'tokenizes' it as llama.cpp would (UTF-8 bytes), then refuses with a
    503 so that a request which got this far is told apart from one refused at the edge."""

    alive = True
    room = 72  # EngineClient.room: requests held at once (a queue of 64, 8 sequences)

    def __init__(self) -> None:
        self.spec = SimpleNamespace(id=MODEL, n_ctx=4096, aliases=(), embedding=False, sampling=SamplingParams())
        self.dimensions = 4
        self.info = SimpleNamespace(embedding_size=self.dimensions, template=None)
        self.requests: list[GenerateRequest] = []

    @staticmethod
    def _tokenize(req: GenerateRequest) -> int:
        texts = [req.prompt or "", *(m.content for m in req.messages or []), *req.stop]
        return sum(len(t.encode("utf-8")) for t in texts)

    async def submit(self, req: GenerateRequest):
        self.requests.append(req)
        self._tokenize(req)
        raise Overloaded(MODEL)

    async def count_tokens(self, req: GenerateRequest) -> int:
        return self._tokenize(req)

    async def embed(self, inputs: list) -> tuple[list[list[float]], int]:
        n = sum(len(x.encode("utf-8")) if isinstance(x, str) else len(x) for x in inputs)
        return [[0.0] * self.dimensions for _ in inputs], n


class StubRegistry:
    """What create_app's lifespan, /health, /v1/models and the routes use of engine.Registry
    (both its get()/get_embedder() and its newer use() context manager)."""

    def __init__(self) -> None:
        self.engine = StubEngine()
        self.config = SimpleNamespace(default=MODEL, models=(self.engine.spec,))
        self.default_id = MODEL
        self.load_seconds: dict[str, float] = {}
        self.crashes: dict = {}

    @property
    def specs(self) -> tuple:
        return self.config.models

    def spec(self, name: str):
        if name != MODEL:
            raise ModelNotFound(name)
        return self.engine.spec

    def loaded(self, model_id: str):
        return self.engine if model_id == MODEL else None

    async def get(self, name: str) -> StubEngine:
        self.spec(name)
        return self.engine

    get_embedder = get_any = get

    @contextlib.asynccontextmanager
    async def use(self, name: str, embedding: bool = False):
        yield await self.get(name)

    async def preload(self) -> None:
        pass

    async def unload_idle(self) -> list[str]:
        return []

    def close(self) -> asyncio.Future:
        # The lifespan calls reg.close() or awaits it, depending on the app.py version: allow both.
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
def registry() -> StubRegistry:
    return StubRegistry()


async def serve(settings: Settings, registry: StubRegistry):
    app = create_app(settings, registry=registry)
    # raise_app_exceptions=False: a fault must show up as the 500 a client would get.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return app, httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def client(registry):
    app, http = await serve(Settings(), registry)
    async with app.router.lifespan_context(app), http:
        yield http


async def post_raw(client: httpx.AsyncClient, path: str, text: str, headers: dict | None = None) -> httpx.Response:
    return await client.post(path, content=text.encode("utf-8"),
                              headers={"content-type": "application/json", **(headers or {})})


def assert_openai_400(r: httpx.Response, param: str | None) -> dict:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    return err


def assert_anthropic_400(r: httpx.Response) -> dict:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    return body["error"]


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


# 1. logit_bias keys must be plain decimal integers; values finite; sizes sane.

@pytest.mark.parametrize("key", ["--5", "²", "٣", "+5", " 5", "5 ", "5_0", "0x10", "", "-", "1e3", "5\n",
                                 "9" * 5000])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_logit_bias_key_that_is_not_a_decimal_integer_is_a_400(client, registry, key, path):
    body = {**CHAT, "logit_bias": {key: 1}} if path == "/v1/chat/completions" else \
        {"model": MODEL, "prompt": "hi", "logit_bias": {key: 1}}
    r = await client.post(path, json=body)
    assert_openai_400(r, "logit_bias")
    assert not registry.engine.requests


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "101", "-100.5"])
async def test_logit_bias_value_that_is_not_finite_or_out_of_range_is_a_400(client, value):
    r = await post_raw(client, "/v1/chat/completions",
                       json.dumps(CHAT)[:-1] + f', "logit_bias": {{"5": {value}}}}}')
    assert_openai_400(r, "logit_bias")


async def test_logit_bias_with_too_many_entries_is_a_400(client, registry):
    r = await client.post("/v1/chat/completions", json={**CHAT, "logit_bias": {str(i): 1 for i in range(1025)}})
    assert_openai_400(r, "logit_bias")
    assert not registry.engine.requests


async def test_plain_logit_bias_still_reaches_the_engine(client, registry):
    bias = {"5": 1, "-0": -100, "007": 2.5, str(i := 1023): 0}
    r = await client.post("/v1/chat/completions", json={**CHAT, "logit_bias": bias})
    assert r.status_code == 503, r.text  # the stub engine's answer: it got the request
    assert registry.engine.requests[-1].sampling.logit_bias == {5: 1.0, 0: -100.0, 7: 2.5, i: 0.0}
    r = await client.post("/v1/chat/completions", json={**CHAT, "logit_bias": {str(k): 1 for k in range(1024)}})
    assert r.status_code == 503, r.text


# 2. A lone surrogate anywhere in a JSON body: a 400 naming where, in the route's protocol shape.

LONE = "\\ud800"  # as the client writes it in JSON text
OPENAI_SURROGATES = [
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": "a%sb"}]}',
     "messages[0].content"),
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": [{"type": "text", '
                             '"text": "%s"}]}]}', "messages[0].content[0].text"),
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": "hi"}], '
                             '"stop": ["x", "%s"]}', "stop[1]"),
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": "hi"}], '
                             '"tool_choice": {"type": "function", "function": {"name": "f%s"}}}',
     "tool_choice.function.name"),
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": "hi"}], "tools": '
                             '[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", '
                             '"properties": {"x": {"type": "string", "enum": ["%s"]}}}}}]}',
     "tools[0].function.parameters.properties.x.enum[0]"),
    ("/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "content": "hi"}], '
                             '"metadata": {"k%s": "v"}}', 'metadata["k\\ud800"]'),
    ("/api/v1/chat/completions", '{"model": "stub", "messages": [{"role": "user", "name": "%s", '
                                 '"content": "hi"}]}', "messages[0].name"),
    ("/v1/completions", '{"model": "stub", "prompt": "%s"}', "prompt"),
    ("/v1/completions", '{"model": "stub", "prompt": ["ok", "x%s"]}', "prompt[1]"),
    ("/v1/embeddings", '{"model": "stub", "input": "%s"}', "input"),
]


@pytest.mark.parametrize("path,template,param", OPENAI_SURROGATES)
async def test_lone_surrogate_in_an_openai_body_is_a_400_naming_where(client, registry, path, template, param):
    r = await post_raw(client, path, template % LONE)
    err = assert_openai_400(r, param)
    assert "surrogate" in err["message"]
    assert not registry.engine.requests


ANTHROPIC_SURROGATES = [
    ("/v1/messages", '{"model": "stub", "max_tokens": 5, "messages": [{"role": "user", "content": "%s"}]}',
     "messages[0].content"),
    ("/v1/messages", '{"model": "stub", "max_tokens": 5, "system": [{"type": "text", "text": "%s"}], '
                     '"messages": [{"role": "user", "content": "hi"}]}', "system[0].text"),
    ("/v1/messages", '{"model": "%s", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}',
     "model"),
    ("/v1/messages/count_tokens", '{"model": "stub", "messages": [{"role": "user", "content": '
                                  '[{"type": "text", "text": "%s"}]}]}', "messages[0].content[0].text"),
]


@pytest.mark.parametrize("path,template,param", ANTHROPIC_SURROGATES)
async def test_lone_surrogate_in_an_anthropic_body_is_a_400_in_anthropic_shape(client, registry, path, template,
                                                                               param):
    r = await post_raw(client, path, template % LONE)
    err = assert_anthropic_400(r)
    assert param in err["message"] and "surrogate" in err["message"]
    assert not registry.engine.requests


@pytest.mark.parametrize("surrogate", ["\\udfff", "\\uDC00", "\\ud83d"])
async def test_every_lone_surrogate_is_refused(client, surrogate):
    r = await post_raw(client, "/v1/completions", '{"model": "stub", "prompt": "%s"}' % surrogate)
    assert_openai_400(r, "prompt")


async def test_raw_utf8_encoded_surrogate_bytes_are_refused(client):
    # json.loads(bytes) decodes with 'surrogatepass', so CESU-style bytes ED A0 80 become U+D800.
    r = await client.post("/v1/completions", content=b'{"model": "stub", "prompt": "\xed\xa0\x80"}',
                          headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


async def test_a_proper_surrogate_pair_is_text_and_passes(client, registry):
    r = await post_raw(client, "/v1/completions", '{"model": "stub", "prompt": "\\ud83d\\ude00 ok"}')
    assert r.status_code == 503, r.text
    assert registry.engine.requests[-1].prompt == "\U0001F600 ok"


async def test_deeply_nested_body_is_a_400_not_a_500(client):
    deep = '{"model": "stub", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = await post_raw(client, "/v1/chat/completions", deep)
    assert_openai_400(r, None)
    r = await post_raw(client, "/v1/messages", deep)
    assert_anthropic_400(r)


async def test_nesting_json_can_parse_is_walked_without_recursion(client):
    # Just under json's own limit: the walk must find the surrogate at the bottom without recursing.
    depth = 400
    body = '{"model": "stub", "prompt": "x", "metadata": ' + '{"a": ' * depth + '"%s"' % LONE + "}" * depth + "}"
    r = await post_raw(client, "/v1/completions", body)
    assert_openai_400(r, "metadata" + ".a" * depth)


def test_the_walk_does_not_recurse_even_100k_deep():
    from server import jsonbody
    from server.errors import ApiError

    deep: list = ["\udfff"]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ApiError) as caught:
        jsonbody.check_text({"prompt": deep})
    assert caught.value.status == 400 and caught.value.param == "prompt" + "[0]" * 100_001
    jsonbody.check_text({"prompt": [[[[["clean"]]]]] * 3})  # no error


async def test_surrogate_in_a_utf16_body_is_refused(client):
    # json.loads detects UTF-16 and decodes it with 'surrogatepass' as well: no byte-level shortcut.
    r = await client.post("/v1/completions", content='{"model": "stub", "prompt": "\ud800"}'.encode(
        "utf-16-le", "surrogatepass"), headers={"content-type": "application/json"})
    assert_openai_400(r, "prompt")


async def test_utf8_bom_body_with_escaped_surrogate_is_refused(client):
    r = await client.post("/v1/completions", content=b'\xef\xbb\xbf{"model": "stub", "prompt": "\\uD800"}',
                          headers={"content-type": "application/json"})
    assert_openai_400(r, "prompt")


async def test_integer_literal_past_the_digit_limit_is_the_parse_400(client):
    r = await post_raw(client, "/v1/chat/completions", '{"model": "stub", "n": ' + "9" * 5000 + "}")
    err = assert_openai_400(r, None)
    assert err["message"].startswith("We could not parse the JSON body")


@pytest.mark.parametrize("text", ["[1, 2]", '"hello"', "42", "null", "true"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_json_body_that_is_not_an_object_is_a_400(client, text, path):
    r = await post_raw(client, path, text)
    assert r.status_code == 400, r.text
    assert "object" in r.text


async def test_empty_body_is_still_a_400(client):
    r = await client.post("/v1/chat/completions", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    r = await client.post("/v1/messages", content=b"", headers={"content-type": "application/json"})
    assert_anthropic_400(r)


async def test_the_body_is_parsed_once(client, registry, monkeypatch):
    import starlette.requests

    calls = []

    class CountingJson:
        def __getattr__(self, name):
            return getattr(json, name)

        @staticmethod
        def loads(*args, **kwargs):
            calls.append(1)
            return json.loads(*args, **kwargs)

    monkeypatch.setattr(starlette.requests, "json", CountingJson())
    r = await post_raw(client, "/v1/chat/completions", json.dumps({**CHAT, "stop": "\ud83d\ude00"}))
    assert r.status_code == 503, r.text
    assert registry.engine.requests[-1].stop == ["\U0001F600"]
    assert len(calls) == 1


@pytest.mark.parametrize("text", ['{"model": ', "{'a': 1}", "{} x", "\x00"])
async def test_malformed_json_stays_the_parse_400(client, text):
    r = await post_raw(client, "/v1/chat/completions", text)
    err = assert_openai_400(r, None)
    assert err["message"].startswith("We could not parse the JSON body")
    r = await post_raw(client, "/v1/messages", text)
    assert assert_anthropic_400(r)["message"].startswith("We could not parse the JSON body")


async def test_invalid_utf8_body_is_the_parse_400(client):
    r = await client.post("/v1/chat/completions", content=b'{"model": "\xff"}',
                          headers={"content-type": "application/json"})
    err = assert_openai_400(r, None)
    assert err["message"].startswith("We could not parse the JSON body")


async def test_plain_requests_are_untouched(client, registry):
    r = await client.post("/v1/chat/completions", json={**CHAT, "stop": ["é", "😀"]})
    assert r.status_code == 503, r.text
    assert registry.engine.requests[-1].messages[0].content == "hi"
    r = await client.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": [
        {"role": "user", "content": "héllo 😀"}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"input_tokens": len("héllo 😀".encode())}
    r = await client.post("/v1/embeddings", json={"model": MODEL, "input": ["a", "b"]})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2


@pytest.mark.parametrize("path", ["/v1/models/%ED%A0%80", "/v1/models/%FF", "/v1/models/%ED%A0%80x%FF",
                                  "/v1/models/%00"])
async def test_model_path_with_bad_percent_encoding_is_not_a_500(client, path):
    r = await client.get(path)
    assert r.status_code in (400, 404), r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "model"


async def test_known_model_card_still_answers(client):
    r = await client.get(f"/v1/models/{MODEL}")
    assert r.status_code == 200 and r.json()["id"] == MODEL


# 3. Rate limits: per key when the server has keys, per address when it has none.

async def test_made_up_bearer_tokens_do_not_get_fresh_buckets(registry):
    app, http = await serve(Settings(rate_limit_rpm=2), registry)
    async with app.router.lifespan_context(app), http:
        codes = [(await http.get("/v1/models", headers={"Authorization": f"Bearer made-up-{i}"})).status_code
                 for i in range(3)]
        assert codes == [200, 200, 429]
        r = await http.get("/v1/models", headers={"x-api-key": "another"})
        assert r.status_code == 429
        assert r.json()["error"]["type"] == "rate_limit_exceeded"


async def test_each_configured_key_has_its_own_bucket(registry):
    app, http = await serve(Settings(rate_limit_rpm=2, api_keys=("k1", "k2")), registry)
    async with app.router.lifespan_context(app), http:
        k1 = {"Authorization": "Bearer k1"}
        assert [(await http.get("/v1/models", headers=k1)).status_code for _ in range(3)] == [200, 200, 429]
        assert (await http.get("/v1/models", headers={"x-api-key": "k2"})).status_code == 200
        assert (await http.get("/v1/models", headers={"Authorization": "Bearer k2"})).status_code == 200
        assert (await http.get("/v1/models", headers={"x-api-key": "k2"})).status_code == 429
        # A wrong key is a 401, whichever bucket it might have named.
        assert (await http.get("/v1/models", headers={"Authorization": "Bearer k3"})).status_code == 401


async def test_a_valid_key_beside_a_bogus_one_is_charged_to_the_valid_key(registry):
    app, http = await serve(Settings(rate_limit_rpm=2, api_keys=("k1",)), registry)
    async with app.router.lifespan_context(app), http:
        codes = [(await http.get("/v1/models", headers={"x-api-key": "k1", "Authorization": f"Bearer junk{i}"}))
                 .status_code for i in range(3)]
        assert codes == [200, 200, 429]


# The body check's cost, reported rather than asserted tightly (timings vary by machine).

async def test_body_check_overhead_for_a_1mb_body_is_small(client):
    from server import jsonbody

    body = {"model": MODEL, "messages": [{"role": "user", "content": "word é " * 40} for _ in range(3000)]}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert 900_000 < len(raw) < 1_300_000
    parsed = json.loads(raw)
    start = time.perf_counter()
    for _ in range(10):
        json.loads(raw)
    parse = (time.perf_counter() - start) / 10
    start = time.perf_counter()
    for _ in range(10):
        jsonbody.check_text(parsed, raw)
    check = (time.perf_counter() - start) / 10
    assert check < max(3 * parse, 0.02), (check, parse)
