"""Inside a worker: resolve a model's GGUF, load it into llama.cpp and build what serves it."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from .chat_template import BuiltinTemplate, ChatTemplate
from .config import ModelSpec, Source
from .drafter import Drafter
from .errors import ModelLoadFailed
from .hosts import EmbedderHost, GeneratorHost, Send
from .messages import ModelInfo, Start
from .prepare import Preparer

log = logging.getLogger(__name__)


def load_host(start: Start, send: Send) -> tuple[GeneratorHost | EmbedderHost, ModelInfo]:
    spec = start.spec
    backend = _backend(start)
    info = ModelInfo(pid=os.getpid(), n_seq=backend.n_seq, memory_bytes=getattr(backend, "memory_bytes", 0))
    if spec.embedding:
        info.embedding_size = backend.n_embd
        max_tokens = min(spec.n_ctx, backend.n_batch)
        return EmbedderHost(backend, backend.adds_bos, max_tokens, send), info
    template, info.template = _template(spec, backend)
    preparer = Preparer(spec, backend, template, adds_bos=backend.adds_bos)
    drafter = _drafter(start, backend)
    if drafter is not None:
        info.memory_bytes += getattr(drafter.backend, "memory_bytes", 0)
    return GeneratorHost(preparer, backend, send, drafter), info


def _drafter(start: Start, backend: Any) -> Drafter | None:
    """The draft model, in a context shaped like the main one (a sequence per slot)."""
    draft = start.spec.draft
    if draft is None or start.backend:
        return None
    small = _backend(start, draft.source, f"{start.spec.id} (draft)")
    try:
        # Every token's bytes, special tokens rendered, so differing BOS/EOS ids are caught too.
        same = small.n_vocab == backend.n_vocab and all(
            small.token_bytes(t) == backend.token_bytes(t) for t in range(small.n_vocab))
    except BaseException:
        small.close()
        raise
    if not same:
        small.close()
        raise ModelLoadFailed(start.spec.id, "the draft model's vocabulary is not the model's own")
    log.info("%s: speculative decoding with a draft model, up to %d tokens a step", start.spec.id, draft.n_draft)
    return Drafter(small, draft.n_draft)


def _backend(start: Start, source: Source | None = None, name: str = "") -> Any:
    if start.backend:  # a stand-in (tests): "module:factory", called with the spec
        module, _, factory = start.backend.partition(":")
        return getattr(importlib.import_module(module), factory)(start.spec)
    from .backend import Backend  # only the worker imports llama.cpp
    from .sources import resolve

    spec = start.spec
    backend = Backend(
        resolve(name or spec.id, source or spec.source),
        n_ctx_per_seq=spec.n_ctx,
        n_seq=spec.parallel,
        # Pooled embeddings need each input whole in one decode.
        n_batch=max(spec.n_batch, spec.n_ctx) if spec.embedding else spec.n_batch,
        n_threads=spec.n_threads,
        n_gpu_layers=spec.n_gpu_layers,
        kv_unified=spec.kv_unified,
        embeddings=spec.embedding,
        flash_attn=spec.flash_attn,
        model_id=name or spec.id,
    )
    if spec.n_ctx > backend.n_ctx_train > 0:
        log.warning("%s: n_ctx %d is beyond the %d tokens it was trained on", spec.id, spec.n_ctx, backend.n_ctx_train)
    return backend


def _template(spec: ModelSpec, backend: Any) -> tuple[ChatTemplate, str]:
    """The chat template and where it came from: models.yaml, the GGUF, one of llama.cpp's
    built-in formats chosen for this model, or (said loudly) a ChatML guess."""
    bos = backend.token_text(backend.bos) if backend.bos >= 0 else ""
    eos = backend.token_text(backend.eos) if backend.eos >= 0 else ""
    if spec.chat_template:
        return ChatTemplate(spec.chat_template, bos, eos), "models.yaml"
    kind, source = backend.chat_template()
    if kind == "builtin":
        log.info("%s: the GGUF has no chat template; using llama.cpp's built-in %r format", spec.id, source)
        return BuiltinTemplate(source, backend.apply_builtin_template, bos, eos), f"builtin:{source}"
    if kind == "fallback":
        log.warning("%s: the GGUF has no chat template and llama.cpp knows no format for this model: falling back "
                    "to ChatML, which may never stop or leak <|im_start|> markers if the model uses another "
                    "format. Set `chat_template` for it in models.yaml.", spec.id)
        return ChatTemplate(None, bos, eos), "fallback:chatml"
    return ChatTemplate(source, bos, eos), "gguf"
