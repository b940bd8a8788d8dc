"""`ggserve pull` and `ggserve models`: the commands beside `ggserve [flags]`, which serves.
They print to stdout (that is their output) and return an exit status."""

from __future__ import annotations

import argparse
from typing import Callable

from . import listing, pull

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"pull": pull.run, "models": listing.run}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ggserve")
    commands = parser.add_subparsers(dest="command", required=True)
    pull.add_arguments(commands.add_parser(
        "pull", help="fetch GGUF files from the Hugging Face hub into its cache",
        description="Download a GGUF through huggingface_hub (with its progress bar) into its cache and print "
                    "where it is. Without REPO: every hub source of models.yaml."))
    listing.add_arguments(commands.add_parser(
        "models", help="list the configured models, their sources, and whether each file is here",
        description="List models.yaml's models (or the embedded default): source, whether the file is on this "
                    "machine, its size and path. Exits 1 when a file is missing."))
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
