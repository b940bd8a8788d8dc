"""Adding a model to models.yaml: appended as text, so the file's comments and layout stay, and
checked with the server's own reader before the file is replaced."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from engine import ConfigError, ModelSpec, Source, builtin_default, load_models

_PLAIN = re.compile(r"[A-Za-z0-9][\w./@+-]*")  # safe unquoted in a YAML flow mapping
_ITEM = re.compile(r"^( *)- ", re.MULTILINE)
_MODELS_KEY = re.compile(r"^models:[ \t]*(#.*)?$", re.MULTILINE)


def add_model(path: Path, model_id: str, source: Source) -> str:
    """Add `model_id` served from `source`; a new file also keeps the embedded default model (what
    `ggserve` served without one). Returns what was done, for the user."""
    entry = {"id": model_id, "source": _source_fields(source)}
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        config = load_models(path)  # refuse to touch a file the server would refuse
        if any(model_id == s.id or model_id in s.aliases for s in config.models):
            raise ValueError(f"{path} already has a model named {model_id!r}")
        new_text = _appended(text, entry)
        how = f"added model {model_id!r} to {path}"
    else:
        default = builtin_default().models[0]
        new_text = (f"# Written by `ggserve pull --add {model_id}`: the embedded default, and the model pulled.\n"
                    f"default: {_scalar(default.id)}\nmodels:\n{_entry(_fields(default), '  ')}{_entry(entry, '  ')}")
        how = f"created {path} with model {model_id!r} (and the embedded default {default.id!r})"
    _replace_checked(path, new_text)
    return how


def _appended(text: str, entry: dict[str, Any]) -> str:
    """The file with `entry` appended to its models list as text; where the layout does not allow
    that (models not the last key, a flow-style list), the whole file rewritten instead."""
    raw = yaml.safe_load(text)
    wanted = {**raw, "models": [*raw["models"], entry]}
    key = _MODELS_KEY.search(text)
    items = _ITEM.findall(text, key.end()) if key else []
    indent = items[0] if items else "  "
    appended = text.rstrip("\n") + "\n" + _entry(entry, indent)
    try:
        if yaml.safe_load(appended) == wanted:
            return appended
    except yaml.YAMLError:
        pass
    return yaml.safe_dump(wanted, sort_keys=False)


def _replace_checked(path: Path, text: str) -> None:
    """Write beside the file, read it back as the server would, then swap it in."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        try:
            load_models(tmp)
        except ConfigError as exc:  # named as the file it would have become
            raise ConfigError(str(exc).replace(tmp, str(path))) from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _source_fields(source: Source) -> dict[str, str]:
    return {k: v for k, v in (("hf", source.hf), ("file", source.file), ("revision", source.revision)) if v}


def _fields(spec: ModelSpec) -> dict[str, Any]:
    source = {k: v for k, v in (("package", spec.source.package), ("file", spec.source.file)) if v}
    return {"id": spec.id, "aliases": list(spec.aliases), "source": source, "n_ctx": spec.n_ctx,
            "parallel": spec.parallel}


def _entry(fields: dict[str, Any], indent: str) -> str:
    """A models list item, one line per field, lists and mappings in flow style (as the README's)."""
    lines = [f"{indent}{'- ' if i == 0 else '  '}{key}: {_flow(value)}"
             for i, (key, value) in enumerate(fields.items())]
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value) if isinstance(value, int) else _scalar(value)


def _scalar(value: str) -> str:
    plain = _PLAIN.fullmatch(value) and yaml.safe_load(value) == value
    return value if plain else json.dumps(value)
