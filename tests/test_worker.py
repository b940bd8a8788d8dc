"""The engine client and its worker over a real connection, with the fake backend: on a thread
(the protocol) and in a process of its own (isolation, crashes, restarts)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from engine import (ContextLengthExceeded, EngineClient, EngineCrashed, FinishReason, GenerateRequest, InvalidRequest,
                    Message, OutputKind, ProcessLauncher, Registry, ResponseFormat, SamplingParams, ThreadLauncher)
from engine.config import ModelsConfig, ModelSpec, Source

from .fake_backend import PLAIN

FAKE = "tests.fake_backend:make_backend"


def spec(**kw) -> ModelSpec:
    return ModelSpec(id="fake", source=Source(path="x"), n_ctx=64, parallel=4, n_batch=16, chat_template=PLAIN, **kw)


def request(text: str = "hi", seed: int = 0, **kw) -> GenerateRequest:
    return GenerateRequest(messages=[Message("user", text)], sampling=SamplingParams(seed=seed), **kw)


async def text_of(gen) -> tuple[str, FinishReason]:
    deltas = [d async for d in gen]
    return "".join(d.text for d in deltas), deltas[-1].finish_reason


@pytest.fixture
async def client():
    c = EngineClient(spec(), ThreadLauncher(), backend=FAKE)
    await c.start()
    yield c
    await c.close()


async def test_submit_streams_the_generation_and_stats_follow(client):
    gen = await client.submit(request(seed=1))
    assert gen.prompt_tokens == 2
    assert await text_of(gen) == ("abc", FinishReason.STOP)
    for _ in range(100):  # the Step that carried the finish also carried the counters
        if client.stats().generated_tokens == 4:
            break
        await asyncio.sleep(0.01)
    assert (client.stats().generated_tokens, client.stats().running, client.in_flight) == (4, 0, 0)


async def test_errors_cross_the_boundary_with_their_fields(client):
    with pytest.raises(ContextLengthExceeded) as info:
        await client.submit(request(text="y" * 100))
    assert (info.value.n_prompt, info.value.n_ctx) == (100, 64)
    assert client.in_flight == 0


async def test_count_tokens_and_concurrent_requests(client):
    assert await client.count_tokens(request(text="count me")) == 8
    gens = await asyncio.gather(*(client.submit(request(seed=3)) for _ in range(6)))
    assert [t for t, _ in await asyncio.gather(*(text_of(g) for g in gens))] == ["0123456789"] * 6


async def test_closing_a_generation_aborts_it_and_settle_reports_its_usage(monkeypatch):
    monkeypatch.setenv("FAKE_DELAY", "0.01")
    client = EngineClient(spec(), ThreadLauncher(), backend=FAKE)
    await client.start()
    try:
        gen = await client.submit(request(seed=4))  # a thousand tokens, 10 ms each
        async for delta in gen:
            if delta.text:
                break
        finals = await gen.settle()
        assert [f.finish_reason for f in finals] == [FinishReason.ABORTED]
        assert finals[0].usage.prompt_tokens == 2 and finals[0].usage.completion_tokens >= 1
        assert client.in_flight == 0
    finally:
        await client.close()


async def test_a_killed_worker_fails_its_requests_and_the_registry_restarts_it(monkeypatch):
    monkeypatch.setenv("FAKE_DELAY", "0.01")
    registry = Registry(ModelsConfig(default="fake", models=(spec(),)), ProcessLauncher(), backend=FAKE)
    try:
        await registry.preload()
        client = registry.loaded("fake")
        first_pid = client.pid
        assert first_pid != os.getpid()
        running = await client.submit(request(seed=4))  # a thousand tokens at 10 ms each
        async for delta in running:
            if delta.text:
                break
        os.kill(first_pid, signal.SIGKILL)
        rest = [d async for d in running]
        assert rest[-1].finish_reason is FinishReason.ERROR
        assert rest[-1].failure.code == "model_crashed" and "SIGKILL" in rest[-1].failure.message
        with pytest.raises(EngineCrashed):
            await client.submit(request(seed=1))
        for _ in range(200):
            if registry.loaded("fake") is not None:
                break
            await asyncio.sleep(0.05)
        again = registry.loaded("fake")
        assert again is not None and again.pid != first_pid
        assert registry.crashes["fake"].count == 1 and "SIGKILL" in registry.crashes["fake"].last_reason
        assert await text_of(await again.submit(request(seed=1))) == ("abc", FinishReason.STOP)
    finally:
        await registry.close()


async def test_a_restart_woken_a_hair_early_waits_out_its_back_off_instead_of_growing_it(monkeypatch):
    # asyncio may fire a timer a little before the clock says it is due; the restart then found
    # itself still inside its back-off, counted that as a failed start, doubled the back-off, and
    # (each retry early again) the model never came back. Timers here fire 5 ms early.
    import types

    import engine.registry as registry_module
    early = types.SimpleNamespace(**vars(asyncio))
    early.sleep = lambda delay, *a: asyncio.sleep(max(0.0, delay - 0.005), *a)
    monkeypatch.setattr(registry_module, "asyncio", early)
    registry = Registry(ModelsConfig(default="fake", models=(spec(),)), ProcessLauncher(), backend=FAKE)
    try:
        await registry.preload()
        for _ in range(2):  # two crashes within a minute: the second restart waits FIRST_BACKOFF_S
            pid = registry.loaded("fake").pid
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                if (c := registry.loaded("fake")) is not None and c.pid != pid:
                    break
                await asyncio.sleep(0.05)
        assert registry.loaded("fake") is not None, "the model did not come back"
        assert registry.crashes["fake"].count == 2 and registry.crashes["fake"].backoff == 1.0
    finally:
        await registry.close()


async def test_unloading_ends_the_worker_process(monkeypatch):
    registry = Registry(ModelsConfig(default="fake", models=(spec(),)), ProcessLauncher(), backend=FAKE)
    await registry.preload()
    pid = registry.loaded("fake").pid
    await registry.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_request_too_deep_to_cross_fails_alone_and_the_connection_lives_on(client):
    # Regression: pickling a 300-level schema raised RecursionError on the writer thread, which
    # died, and every later request to the model hung.
    schema: dict = {"type": "string"}
    for _ in range(600):
        schema = {"type": "object", "properties": {"x": schema}}
    deep = request(response_format=ResponseFormat(OutputKind.JSON_SCHEMA, schema, param="response_format"))
    with pytest.raises(InvalidRequest) as info:
        await client.submit(deep)
    assert info.value.param == "response_format"
    assert await text_of(await client.submit(request(seed=1))) == ("abc", FinishReason.STOP)


async def test_a_message_that_cannot_be_read_closes_the_link_instead_of_leaving_callers_waiting():
    import socket
    import threading
    from multiprocessing.connection import Connection

    from engine.link import Link

    ours, theirs = socket.socketpair()
    conn, worker_end = Connection(ours.detach()), Connection(theirs.detach())
    closed = threading.Event()
    link = Link(conn, asyncio.get_running_loop(), lambda msg: None, closed.set)
    link.start("test")
    worker_end.send_bytes(b"\x80\x04garbage")  # not a pickle: the reader thread used to die here
    assert await asyncio.to_thread(closed.wait, 5)
    with pytest.raises((EOFError, OSError)):
        worker_end.recv_bytes()  # our end is closed: a worker would see it and exit
