"""Server knobs from command-line flags, each also settable as a GGSERVE_* environment variable."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    models: str | None = None  # models.yaml; None: ./models.yaml if present, else the embedded default
    model: str | None = None  # a single GGUF file, no yaml
    log_level: str = "info"


def parse_args(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(
        prog="ggserve",
        description="OpenAI- and Anthropic-compatible server for GGUF models (llama.cpp, continuous batching).",
    )
    parser.add_argument("--host", default=env.get("GGSERVE_HOST", Settings.host),
                        help="address to bind (env GGSERVE_HOST; default %(default)s)")
    parser.add_argument("--port", type=int, default=int(env.get("GGSERVE_PORT", Settings.port)),
                        help="port to listen on (env GGSERVE_PORT; default %(default)s)")
    parser.add_argument("--models", default=env.get("GGSERVE_MODELS"),
                        help="models.yaml registry (env GGSERVE_MODELS; default ./models.yaml, else the embedded SmolLM2)")
    parser.add_argument("--model", default=env.get("GGSERVE_MODEL"),
                        help="serve this one GGUF file instead of a registry (env GGSERVE_MODEL)")
    parser.add_argument("--log-level", default=env.get("GGSERVE_LOG_LEVEL", Settings.log_level),
                        choices=["debug", "info", "warning", "error"], help="(env GGSERVE_LOG_LEVEL)")
    args = parser.parse_args(argv)
    if args.models and args.model:
        parser.error("--models and --model are exclusive: pick one")
    return Settings(host=args.host, port=args.port, models=args.models, model=args.model, log_level=args.log_level)
