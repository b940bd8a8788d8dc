"""Legacy /v1/completions: raw prompts (no chat template), one or several, in the legacy shape."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

from pydantic import ConfigDict, Field

from engine import Delta, Generation, GenerateRequest, SamplingParams, usage_of

from .. import sse
from ..errors import ApiError, openai_body
from .convert import FINISH_REASONS, SAMPLING_FIELDS, to_logit_bias, to_stop, usage_body
from .protocol import GenerationFields

class CompletionRequest(GenerationFields):
    model_config = ConfigDict(extra="allow")

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)  # the legacy API's default
    best_of: int | None = Field(default=None, ge=1)
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)


def prompts_of(body: CompletionRequest) -> list[str]:
    prompt = body.prompt
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)  # type: ignore[arg-type]
    raise ApiError(400, "'prompt' must be a string or a list of strings; token-id prompts are not supported",
                   param="prompt")


def check_prompt_count(prompts: list[str], room: int | None) -> None:
    """Each prompt is a request of its own to the engine, which holds at most `room` (its sequences
    and its queue; None: not known here): a longer list could never be admitted, so it is the
    client's error, not an overload to retry."""
    if room is not None and len(prompts) > room:
        raise ApiError(400, f"At most {room} prompts per request for this model; got {len(prompts)}.",
                       param="prompt")


def to_request(body: CompletionRequest, prompt: str, defaults: SamplingParams) -> GenerateRequest:
    if body.suffix:
        raise ApiError(400, "'suffix' (fill-in-the-middle) is not supported by this server", param="suffix")
    if body.best_of not in (None, body.n):
        raise ApiError(400, "'best_of' other than n is not supported by this server", param="best_of")
    if body.echo and body.logprobs is not None:
        raise ApiError(400, "'echo' with 'logprobs' (prompt logprobs) is not supported by this server", param="echo")
    given = {name: getattr(body, name) for name in SAMPLING_FIELDS if getattr(body, name) is not None}
    return GenerateRequest(
        prompt=prompt,
        sampling=dataclasses.replace(defaults, **given, logit_bias=to_logit_bias(body.logit_bias)),
        max_tokens=body.max_tokens,
        stop=to_stop(body.stop),
        logprobs=body.logprobs,
        n=body.n,
    )


class Gathered:
    """Several prompts' generations as one: prompt i's choices get indexes i*n .. i*n+n-1."""

    def __init__(self, gens: list[Generation], n: int):
        self.gens = gens
        self.n = n  # choices per prompt
        self.n_choices = n * len(gens)
        self._queue: asyncio.Queue[Delta] = asyncio.Queue()
        self._finished = 0
        self._tasks = [asyncio.ensure_future(self._pump(i * n, g)) for i, g in enumerate(gens)]

    async def _pump(self, offset: int, gen: Generation) -> None:
        async for delta in gen:
            self._queue.put_nowait(dataclasses.replace(delta, choice=delta.choice + offset))

    @property
    def done(self) -> bool:
        return self._finished == self.n_choices

    def __aiter__(self) -> Gathered:
        return self

    async def __anext__(self) -> Delta:
        if self.done:
            raise StopAsyncIteration
        delta = await self._queue.get()
        self._finished += delta.finish_reason is not None
        return delta

    async def next_batch(self, timeout: float | None = None) -> list[Delta] | None:
        if self.done:
            return []
        try:
            deltas = [await asyncio.wait_for(self.__anext__(), timeout)]
        except TimeoutError:
            return None
        while not self.done and not self._queue.empty():
            deltas.append(await self.__anext__())
        return deltas

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for gen in self.gens:
            gen.close()

    async def settle(self) -> list[Delta]:
        """Every prompt's final Deltas (see Generation.settle), with their choices renumbered."""
        self.close()
        finals = await asyncio.gather(*(g.settle() for g in self.gens))
        return [dataclasses.replace(f, choice=f.choice + i * self.n) for i, fs in enumerate(finals) for f in fs]


def new_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


def legacy_logprobs(deltas: list[Delta], offset: int) -> dict:
    tokens, values, tops, offsets = [], [], [], []
    for delta in deltas:
        for e in delta.logprobs or []:
            tokens.append(e.token)
            values.append(e.logprob)
            tops.append({t.token: t.logprob for t in e.top})
            offsets.append(offset)
            offset += len(e.token)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def completion_body(model: str, deltas: list[Delta], body: CompletionRequest, prompts: list[str]) -> dict:
    finals = sorted((d for d in deltas if d.finish_reason is not None), key=lambda d: d.choice)
    choices = []
    for final in finals:
        mine = [d for d in deltas if d.choice == final.choice]
        echo = prompts[final.choice // body.n] if body.echo else ""
        choices.append({
            "index": final.choice,
            "text": echo + "".join(d.text for d in mine),
            "logprobs": legacy_logprobs(mine, len(echo)) if body.logprobs is not None else None,
            "finish_reason": FINISH_REASONS[final.finish_reason],
        })
    return {"id": new_id(), "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": usage_body(usage_of(finals, body.n)),
            "system_fingerprint": None}


class CompletionRenderer:
    """Legacy `text_completion` stream chunks."""

    def __init__(self, model: str, body: CompletionRequest, prompts: list[str], n_choices: int):
        self._base = {"id": new_id(), "object": "text_completion", "created": int(time.time()), "model": model}
        self._body = body
        self._prompts = prompts
        self._n_choices = n_choices
        self._finals: list[Delta] = []
        self._offsets = [len(prompts[i // body.n]) if body.echo else 0 for i in range(n_choices)]

    def _chunk(self, index: int, text: str, finish_reason: str | None = None, logprobs: dict | None = None) -> bytes:
        return sse.data({**self._base, "choices": [{"index": index, "text": text, "logprobs": logprobs,
                                                    "finish_reason": finish_reason}]})

    def start(self) -> list[bytes]:
        if not self._body.echo:
            return []
        return [self._chunk(i, self._prompts[i // self._body.n]) for i in range(self._n_choices)]

    def on_delta(self, delta: Delta) -> list[bytes]:
        if not delta.text and not delta.logprobs:
            return []
        lp = None
        if self._body.logprobs is not None:
            lp = legacy_logprobs([delta], self._offsets[delta.choice])
            # Offsets follow the tokens, not this chunk's text: text held back (a stop string's
            # possible start) arrives in a later chunk than its token.
            self._offsets[delta.choice] += sum(len(e.token) for e in delta.logprobs or [])
        return [self._chunk(delta.choice, delta.text, logprobs=lp)]

    def on_finish(self, delta: Delta) -> list[bytes]:
        frames = self.on_delta(delta)
        frames.append(self._chunk(delta.choice, "", FINISH_REASONS[delta.finish_reason]))
        self._finals.append(delta)
        if len(self._finals) < self._n_choices:
            return frames
        if self._body.stream_options and self._body.stream_options.include_usage:
            usage = usage_of(self._finals, self._body.n)
            frames.append(sse.data({**self._base, "choices": [], "usage": usage_body(usage)}))
        frames.append(sse.DONE)
        return frames

    def error(self, err: ApiError) -> list[bytes]:
        return [sse.data(openai_body(err))]

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"
