"""The llama_cpp boundary: the only module that imports llama_cpp.

Everything here is a thin, typed wrapper over llama.cpp's C API as exposed by llama-cpp-python's
ctypes bindings. ctypes releases the GIL for the duration of each C call, so a decode on the
engine's worker thread does not stall the asyncio event loop.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Any

import llama_cpp as ll
import numpy as np

from ..errors import ModelLoadFailed
from ..types import SamplingParams
from . import chat, sampling
from .batch import Batch
from .sampling import Candidates, Sampler
from .vocab import Vocabulary

log = logging.getLogger(__name__)

_backend_ready = False
_backend_lock = threading.Lock()


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            ll.llama_backend_init()
            _backend_ready = True


def _has_amx() -> bool:
    return b"AMX_INT8 = 1" in ll.llama_print_system_info()


def _context_params(n_ctx: int, n_seq: int, n_batch: int, threads: int, kv_unified: bool, embeddings: bool,
                    flash_attn: bool | None = None):
    cparams = ll.llama_context_default_params()
    # n_ctx: room for every sequence to reach its own n_ctx. Without kv_unified each sequence gets
    # its own KV stream, so attention never scans (masked) cells of other sequences or of
    # idle cached prefixes: measured faster on CPU at every context length we tried.
    cparams.n_ctx = n_ctx
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_batch
    cparams.n_seq_max = n_seq
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.kv_unified = kv_unified
    if flash_attn is not None:
        cparams.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
    if embeddings:
        # Pooled sentence vectors; a model without its own pooling gets mean pooling.
        cparams.embeddings = True
        if cparams.pooling_type == ll.LLAMA_POOLING_TYPE_UNSPECIFIED:
            cparams.pooling_type = ll.LLAMA_POOLING_TYPE_MEAN
    cparams.no_perf = True
    return cparams


class Backend(Vocabulary):
    """A loaded GGUF model with one context holding `n_seq` sequences."""

    def __init__(
        self,
        path: str,
        *,
        n_ctx_per_seq: int,
        n_seq: int,
        n_batch: int,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        kv_unified: bool = False,
        embeddings: bool = False,
        flash_attn: bool | None = None,
        model_id: str = "",
    ):
        _init_backend()
        self.model_id = model_id or os.path.basename(path)
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        if _has_amx():
            # ggml's AMX kernels (an "extra buffer type" chosen on CPUs with AMX) crash or compute
            # garbage for Q4_0/Q4_1 weights (llama.cpp issues 16315, 20824): plain CPU buffers.
            mparams.use_extra_bufts = False
        self._model = ll.llama_model_load_from_file(path.encode(), mparams)
        if not self._model:
            raise ModelLoadFailed(self.model_id, f"llama.cpp could not load {path}")
        self._vocab = ll.llama_model_get_vocab(self._model)
        self.n_vocab = ll.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = ll.llama_model_n_ctx_train(self._model)

        threads = n_threads or os.cpu_count() or 1
        cparams = _context_params(n_ctx_per_seq * n_seq, n_seq, n_batch, threads, kv_unified, embeddings, flash_attn)
        self.kv_unified = kv_unified
        self._ctx = ll.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            ll.llama_model_free(self._model)
            raise ModelLoadFailed(self.model_id, "llama.cpp could not create a context (out of memory?)")
        self._memory = ll.llama_get_memory(self._ctx)
        self.n_batch = n_batch
        self.n_seq = n_seq
        self.memory_bytes = os.path.getsize(path) + self._kv_bytes(cparams.n_ctx)
        self._batch = Batch(n_batch)
        self._init_vocabulary()
        self._candidates = Candidates(self._ctx, self.n_vocab)
        log.info(
            "loaded %s: vocab %d, n_ctx %d x %d sequences, batch %d, threads %d",
            self.model_id, self.n_vocab, n_ctx_per_seq, n_seq, n_batch, threads,
        )

    def _kv_bytes(self, n_cells: int) -> int:
        """The f16 KV cache's size: keys and values of every layer for every cell."""
        n_layer = ll.llama_model_n_layer(self._model)
        n_head = max(1, ll.llama_model_n_head(self._model))
        n_embd_kv = ll.llama_model_n_embd(self._model) // n_head * ll.llama_model_n_head_kv(self._model)
        return 2 * n_layer * n_cells * n_embd_kv * 2

    # --- metadata and text -------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = ll.llama_model_meta_val_str(self._model, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:  # long values such as chat templates: ask again with room for all of it
            buf = ctypes.create_string_buffer(n + 1)
            ll.llama_model_meta_val_str(self._model, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    def chat_template(self) -> tuple[str, str]:
        """(kind, template): the GGUF's own Jinja template, else a llama.cpp built-in chosen for
        this model, else ChatML (see chat.py)."""
        return chat.detect(self._model, self.meta("general.architecture") or "", self.meta("tokenizer.ggml.pre") or "")

    def apply_builtin_template(self, name: str, messages: list[dict[str, Any]], add_assistant: bool) -> str:
        return chat.apply_builtin(name, messages, add_assistant)

    # --- decoding ----------------------------------------------------------------------------

    def decode(self, tokens: list[int], positions: list[int], seq_ids: list[int], outputs: list[int]) -> int:
        """One llama_decode over the batch; `outputs` are the batch indexes whose logits are
        needed. Returns llama.cpp's status (0 = success)."""
        self._batch.fill(tokens, positions, seq_ids, outputs)
        return ll.llama_decode(self._ctx, self._batch.batch)

    def check_grammar(self, grammar: Any) -> None:
        """Raise InvalidRequest if llama.cpp cannot parse the grammar."""
        sampling.check_grammar(self._vocab, grammar.gbnf)

    def new_sampler(self, params: SamplingParams, grammar: Any = None) -> Sampler:
        return sampling.new_sampler(self._vocab, params, grammar.gbnf if grammar is not None else None,
                                    self._candidates, self.is_eog)

    def logprobs(self, batch_index: int, token: int, top_n: int) -> tuple[float, list[tuple[int, float]]]:
        """The token's log-probability under the model's own distribution (log-softmax of the raw
        logits row, before any sampler), and the top_n most likely tokens with theirs."""
        row = np.ctypeslib.as_array(ll.llama_get_logits_ith(self._ctx, batch_index), shape=(self.n_vocab,))
        peak = float(row.max())
        lse = peak + float(np.log(np.exp(row - peak).sum()))
        top: list[tuple[int, float]] = []
        if top_n:
            ids = np.argpartition(row, -top_n)[-top_n:]
            top = sorted(((int(t), float(row[t]) - lse) for t in ids), key=lambda p: -p[1])
        return float(row[token]) - lse, top

    def argmax(self, batch_index: int) -> int:
        """The most likely token of a row (a draft model's greedy guess)."""
        row = np.ctypeslib.as_array(ll.llama_get_logits_ith(self._ctx, batch_index), shape=(self.n_vocab,))
        return int(row.argmax())

    @property
    def n_embd(self) -> int:
        return ll.llama_model_n_embd(self._model)

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """One decode over several inputs (a sequence each); their pooled, L2-normalized vectors."""
        ll.llama_memory_clear(self._memory, True)
        tokens = [t for toks in inputs for t in toks]
        positions = [p for toks in inputs for p in range(len(toks))]
        seq_ids = [s for s, toks in enumerate(inputs) for _ in toks]
        status = self.decode(tokens, positions, seq_ids, list(range(len(tokens))))
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        out = []
        for seq in range(len(inputs)):
            vec = np.ctypeslib.as_array(ll.llama_get_embeddings_seq(self._ctx, seq), shape=(self.n_embd,)).copy()
            norm = float(np.linalg.norm(vec))
            out.append((vec / norm if norm > 0 else vec).tolist())
        return out

    def remove_sequence(self, seq: int, from_pos: int = 0) -> bool:
        """Drop the sequence's KV cells from position `from_pos` on; False if it cannot."""
        return bool(ll.llama_memory_seq_rm(self._memory, seq, from_pos, -1))

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        """Give sequence dst the KV cells of src's positions [0, n). A unified cache shares the
        cells; separate streams can only be copied whole (llama.cpp copies the buffer at the next
        decode), so the tail past n is dropped afterwards."""
        if self.kv_unified:
            ll.llama_memory_seq_cp(self._memory, src, dst, 0, n)
        else:
            ll.llama_memory_seq_cp(self._memory, src, dst, -1, -1)
            ll.llama_memory_seq_rm(self._memory, dst, n, -1)

    def close(self) -> None:
        if self._ctx:
            self._batch.free()
            ll.llama_free(self._ctx)
            ll.llama_model_free(self._model)
            self._ctx = None
            self._model = None
