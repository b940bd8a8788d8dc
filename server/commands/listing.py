"""`ggserve models`: the configured models, where each file comes from, whether it is on this
machine, and its size. Looks only (never downloads), so it answers offline too."""

from __future__ import annotations

import argparse

from engine import ConfigError, ModelSpec, Source, find_model_file, hub_offline

from .shared import describe, fail, human_size, load_registry, sources_of

HEAD = ("ID", "SOURCE", "FILE", "SIZE", "PATH")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", metavar="PATH", help="models.yaml (default ./models.yaml, else the embedded "
                                                         "default model)")


def run(args: argparse.Namespace) -> int:
    try:
        config, origin = load_registry(args.models)
    except ConfigError as exc:
        return fail("models", exc)
    sources = [(name, source, name == spec.id and is_default(spec, config.default))
               for spec in config.models for name, source in sources_of(spec)]
    rows = [row(name, source, default) for name, source, default in sources]
    widths = [max(len(r[i]) for r in (HEAD, *rows)) for i in range(len(HEAD) - 1)]
    print(f"models of {origin}:")
    for r in (HEAD, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    missing = [(name, source) for (name, source, _), r in zip(sources, rows) if r[2] == "missing"]
    for name, source in missing:
        print(f"{name}: {why_missing(source, args.models)}")
    return 1 if missing else 0


def is_default(spec: ModelSpec, default: str) -> bool:
    return spec.id == default or default in spec.aliases


def row(name: str, source: Source, default: bool) -> tuple[str, ...]:
    path = find_model_file(source)
    name += " (default)" if default else ""
    if path is None:
        return name, describe(source), "missing", "-", "-"
    return name, describe(source), "present", human_size(path.stat().st_size), str(path)


def why_missing(source: Source, models: str | None) -> str:
    if source.path:
        return f"no such file: {source.path}"
    if source.package:
        return f"no file {source.file!r} in package {source.package!r} (is it installed?)"
    pull = "ggserve pull" + (f" --models {models}" if models else "")
    if hub_offline():
        return (f"not in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it: unset it and run "
                f"`{pull}`")
    return f"not in the Hugging Face cache yet: `{pull}` downloads it (the server would on first use)"
