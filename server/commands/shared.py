"""What `pull` and `models` share: which models.yaml, how a source and a size are shown."""

from __future__ import annotations

import sys
from pathlib import Path

from engine import ConfigError, ModelsConfig, ModelSpec, Source, builtin_default, load_models

DEFAULT_FILE = Path("models.yaml")


def registry_path(models: str | None) -> Path | None:
    """--models, else ./models.yaml if there is one (as the server chooses)."""
    if models:
        return Path(models)
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load_registry(models: str | None) -> tuple[ModelsConfig, str]:
    """The models the server would serve (the embedded default without a file), and where from."""
    path = registry_path(models)
    if path is None:
        return builtin_default(), "the embedded default"
    return load_models(path), str(path)


def describe(source: Source) -> str:
    if source.hf:
        return f"hf {source.hf}:{source.file}" + (f"@{source.revision}" if source.revision else "")
    if source.package:
        return f"package {source.package}:{source.file}"
    return f"path {source.path}"


def human_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def fail(command: str, why: object) -> int:
    print(f"ggserve {command}: {why}", file=sys.stderr)
    return 1


def sources_of(spec: ModelSpec) -> list[tuple[str, Source]]:
    """A model's source, and its draft model's (named `ID draft`), which the server loads too."""
    found = [(spec.id, spec.source)]
    if spec.draft is not None:
        found.append((f"{spec.id} draft", spec.draft.source))
    return found
