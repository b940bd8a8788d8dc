"""The prefix cache reuses KV cells without changing what the model says."""

from __future__ import annotations

import asyncio
import uuid

MODEL = "smollm2"


def system_prompt() -> str:
    # Unique per run, so nothing in the cache matches it before the test does.
    return f"Session {uuid.uuid4().hex}. You are a terse assistant who answers about geography. " * 3


def ask(system: str, question: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def test_a_follow_up_turn_reuses_the_conversation_so_far(client):
    history = ask(system_prompt(), "Name a river.")
    first = client.chat.completions.create(model=MODEL, messages=history, max_tokens=8, temperature=0)
    assert first.usage.prompt_tokens_details.cached_tokens < first.usage.prompt_tokens // 2
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "And a mountain?"}]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=8, temperature=0)
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 2


async def test_a_prefix_shared_from_a_running_sequence_gives_the_same_answer(aclient, server):
    system = system_prompt()

    async def greedy(question: str, max_tokens: int = 16):
        return await aclient.chat.completions.create(model=MODEL, messages=ask(system, question),
                                                     max_tokens=max_tokens, temperature=0)

    cold = await greedy("What is the capital of Peru?")
    # Eight unrelated requests at once take every slot, evicting the cached system prompt.
    await asyncio.gather(*(aclient.chat.completions.create(
        model=MODEL, max_tokens=1, messages=[{"role": "user", "content": f"Say {i}."}]) for i in range(8)))
    before = server.wait_idle()["reused_tokens"]

    long_running = await aclient.chat.completions.create(
        model=MODEL, messages=ask(system, "Describe every country in Europe."), max_tokens=400,
        temperature=0, stream=True)
    await long_running.__anext__()  # its prompt, with the system prompt, is in the KV cache now
    try:
        shared = await greedy("What is the capital of Peru?")
    finally:
        await long_running.close()
    assert shared.usage.prompt_tokens_details.cached_tokens > cold.usage.prompt_tokens // 2
    assert server.wait_idle()["reused_tokens"] > before
    assert shared.choices[0].message.content == cold.choices[0].message.content
