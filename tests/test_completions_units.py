"""The legacy completions stream renderer, without a server."""

import json

from engine.types import Delta, TokenLogprob
from server.openai.completions import CompletionRenderer, CompletionRequest


def lp(token):
    return TokenLogprob(token, token.encode(), -1.0)


def offsets(frames):
    out = []
    for frame in frames:
        body = json.loads(frame.decode().removeprefix("data: "))
        out += body["choices"][0]["logprobs"]["text_offset"]
    return out


def test_streamed_text_offsets_follow_the_tokens_when_text_arrives_later_than_its_token():
    # A stop string's possible start is held back: the token "ab" comes with no text, and its
    # text arrives with the next token's. Each token's offset is still where its text begins.
    body = CompletionRequest(model="m", prompt="x", logprobs=0, stream=True, echo=True)
    renderer = CompletionRenderer("m", body, ["Say:"], 1)
    frames = [*renderer.on_delta(Delta(text="", logprobs=[lp("ab")])),
              *renderer.on_delta(Delta(text="abcd", logprobs=[lp("cd")])),
              *renderer.on_delta(Delta(text="e", logprobs=[lp("e")]))]
    assert offsets(frames) == [4, 6, 8]
