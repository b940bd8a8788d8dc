"""`ggserve pull REPO[:FILE]`: a GGUF from the Hugging Face hub into huggingface_hub's cache (where
the server's `hf` sources read it), optionally added to models.yaml; without REPO, every hub
source of models.yaml."""

from __future__ import annotations

import argparse
import re

from engine import ConfigError, ModelLoadFailed, Source, fetch_model_file, hub_gguf_files, load_models

from .modelfile import add_model
from .shared import DEFAULT_FILE, describe, fail, human_size, registry_path, sources_of

REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="REPO[:FILE]",
                        help="a hub repository (owner/name) and the GGUF file in it; without FILE, the repository's "
                             "only GGUF")
    parser.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: main)")
    parser.add_argument("--add", metavar="ID", help="add the model to models.yaml under this id")
    parser.add_argument("--models", metavar="PATH",
                        help="the models.yaml to add to, or (without REPO) to pull every hub model of "
                             "(default ./models.yaml)")


def run(args: argparse.Namespace) -> int:
    if args.target is None:
        if args.add or args.revision:
            return fail("pull", "--add and --revision need a REPO[:FILE]")
        return pull_registry(args.models)
    try:
        source = parse_target(args.target, args.revision)
        path = fetch_model_file(source.hf, source)
    except ModelLoadFailed as exc:
        return fail("pull", exc.reason)
    except ValueError as exc:
        return fail("pull", exc)
    print(f"{describe(source)}: {path} ({human_size(path.stat().st_size)})")
    if args.add:
        target = registry_path(args.models) or DEFAULT_FILE
        try:
            print(add_model(target, args.add, source))
        except (ConfigError, ValueError, OSError) as exc:
            return fail("pull", exc)
    return 0


def parse_target(target: str, revision: str | None) -> Source:
    """REPO[:FILE]; without FILE, the repository's GGUF when it has exactly one."""
    repo, _, file = target.partition(":")
    if not REPO_ID.fullmatch(repo):
        raise ValueError(f"{repo!r} is not a hub repository id (owner/name)")
    if not file:
        files = hub_gguf_files(repo, revision)
        if len(files) != 1:
            found = "no GGUF files" if not files else f"{len(files)} GGUF files: {', '.join(files)}"
            raise ValueError(f"{repo} has {found}; name one: ggserve pull {repo}:FILE")
        file = files[0]
    if not file.lower().endswith(".gguf"):
        raise ValueError(f"{file!r} is not a .gguf file")
    return Source(hf=repo, file=file, revision=revision)


def pull_source(name: str, source: Source) -> bool:
    """Fetch one hub source into the cache (others are only reported); False if it failed."""
    if not source.hf:
        print(f"{name}: {describe(source)}: nothing to pull")
        return True
    try:
        file = fetch_model_file(name, source)
    except ModelLoadFailed as exc:
        fail("pull", f"{name}: {exc.reason}")
        return False
    print(f"{name}: {describe(source)}: {file} ({human_size(file.stat().st_size)})")
    return True


def pull_registry(models: str | None) -> int:
    """Every hub source of the registry, draft models' included; other sources are only
    reported. 1 if any failed."""
    path = registry_path(models)
    if path is None:
        return fail("pull", "name a REPO[:FILE], or a models.yaml with --models (there is none here)")
    try:
        config = load_models(path)
    except ConfigError as exc:
        return fail("pull", exc)
    failed = 0
    for spec in config.models:
        for name, source in sources_of(spec):
            failed += not pull_source(name, source)
    return 1 if failed else 0
