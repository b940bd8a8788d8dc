"""models.yaml `draft:` through a real worker: the draft model is loaded beside the model, its
guesses are confirmed by the model, and a draft of another vocabulary is refused at load."""

from __future__ import annotations

import pytest

from engine import EngineClient, GenerateRequest, Message, ModelLoadFailed, SamplingParams, ThreadLauncher
from engine.config import DEFAULT_FILE, DEFAULT_PACKAGE, DraftSpec, ModelSpec, Source

SOURCE = Source(package=DEFAULT_PACKAGE, file=DEFAULT_FILE)
PROMPT = "Repeat this list exactly: apple, banana, cherry, damson, elderberry, fig, grape."


def spec(draft: DraftSpec | None) -> ModelSpec:
    return ModelSpec(id="m", source=SOURCE, n_ctx=256, parallel=2, n_batch=64, n_threads=2, prefix_cache=False,
                     draft=draft)


async def greedy(client: EngineClient) -> str:
    gen = await client.submit(GenerateRequest(messages=[Message("user", PROMPT)], max_tokens=40,
                                              sampling=SamplingParams(temperature=0)))
    return "".join([d.text async for d in gen])


async def test_a_draft_model_guesses_and_the_text_is_the_models_own():
    plain = EngineClient(spec(None), ThreadLauncher())
    await plain.start()
    try:
        expected = await greedy(plain)
    finally:
        await plain.close()
    drafted = EngineClient(spec(DraftSpec(source=SOURCE, n_draft=4)), ThreadLauncher())
    await drafted.start()
    try:
        assert await greedy(drafted) == expected and expected
        stats = drafted.stats()
        assert stats.draft_tokens > 0 and stats.draft_accepted > 0, stats
    finally:
        await drafted.close()


async def test_a_draft_model_of_another_vocabulary_is_refused(monkeypatch):
    import engine.loader as loader

    real = loader._backend

    class Other:
        n_vocab = 32000

        def close(self) -> None:
            pass

    monkeypatch.setattr(loader, "_backend", lambda start, source=None, name="": Other() if name else real(start))
    client = EngineClient(spec(DraftSpec(source=SOURCE)), ThreadLauncher())
    with pytest.raises(ModelLoadFailed, match="vocabulary"):
        await client.start()
    await client.close()
