"""Server knobs from command-line flags, each also settable as a GGSERVE_* environment variable."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    models: str | None = None  # models.yaml; None: ./models.yaml if present, else the embedded default
    model: str | None = None  # a single GGUF file, no yaml
    log_level: str = "info"
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    max_queue: int = 64  # requests waiting per model before new ones get 503
    max_body_bytes: int = 16 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()  # empty: CORS off
    shutdown_grace: float = 30.0  # seconds in-flight requests get to finish on SIGTERM
    max_messages: int = 4096  # messages per request
    max_tokens_ceiling: int = 0  # 0: no ceiling beyond each model's context
    rate_limit_rpm: int = 0  # per key; 0: off
    rate_limit_tpm: int = 0
    memory_budget_mb: int = 0  # loaded models' total; 0: no budget
    rate_limit_window: int = 60  # seconds; only GGSERVE_RATE_LIMIT_WINDOW changes it (for tests)


def _env_list(env: dict[str, str], name: str) -> list[str]:
    return [v.strip() for v in env.get(name, "").split(",") if v.strip()]


def read_keys_file(path: str) -> list[str]:
    """One key per line; blank lines and # comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def parse_args(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    d = Settings()
    p = argparse.ArgumentParser(
        prog="ggserve",
        description="OpenAI- and Anthropic-compatible server for GGUF models (llama.cpp, continuous batching). "
                    "Every flag can also be set with the environment variable named after it.",
    )
    p.add_argument("--host", default=env.get("GGSERVE_HOST", d.host), help="address to bind (GGSERVE_HOST; %(default)s)")
    p.add_argument("--port", type=int, default=int(env.get("GGSERVE_PORT", d.port)), help="port (GGSERVE_PORT; %(default)s)")
    p.add_argument("--models", default=env.get("GGSERVE_MODELS"),
                   help="models.yaml registry (GGSERVE_MODELS; default ./models.yaml, else the embedded SmolLM2)")
    p.add_argument("--model", default=env.get("GGSERVE_MODEL"),
                   help="serve this one GGUF file instead of a registry (GGSERVE_MODEL)")
    p.add_argument("--log-level", default=env.get("GGSERVE_LOG_LEVEL", d.log_level),
                   choices=["debug", "info", "warning", "error"], help="(GGSERVE_LOG_LEVEL)")
    p.add_argument("--api-key", action="append", default=None, metavar="KEY",
                   help="require this key on every API route; repeatable (GGSERVE_API_KEY, comma-separated)")
    p.add_argument("--api-keys-file", default=env.get("GGSERVE_API_KEYS_FILE"), metavar="PATH",
                   help="more keys, one per line (GGSERVE_API_KEYS_FILE)")
    p.add_argument("--rate-limit-rpm", type=int, default=int(env.get("GGSERVE_RATE_LIMIT_RPM", 0)), metavar="N",
                   help="requests per minute per key, 0 = off (GGSERVE_RATE_LIMIT_RPM)")
    p.add_argument("--rate-limit-tpm", type=int, default=int(env.get("GGSERVE_RATE_LIMIT_TPM", 0)), metavar="N",
                   help="prompt + completion tokens per minute per key, 0 = off (GGSERVE_RATE_LIMIT_TPM)")
    p.add_argument("--max-messages", type=int, default=int(env.get("GGSERVE_MAX_MESSAGES", d.max_messages)),
                   metavar="N", help="messages per request (GGSERVE_MAX_MESSAGES; %(default)s)")
    p.add_argument("--max-tokens-ceiling", type=int, default=int(env.get("GGSERVE_MAX_TOKENS_CEILING", 0)),
                   metavar="N", help="refuse max_tokens above N, 0 = no ceiling (GGSERVE_MAX_TOKENS_CEILING)")
    p.add_argument("--memory-budget-mb", type=int, default=int(env.get("GGSERVE_MEMORY_BUDGET_MB", 0)), metavar="MB",
                   help="weights + KV cache of all loaded models; beyond it idle models are unloaded, least "
                        "recently used first; 0 = no budget (GGSERVE_MEMORY_BUDGET_MB)")
    p.add_argument("--max-queue", type=int, default=int(env.get("GGSERVE_MAX_QUEUE", d.max_queue)), metavar="N",
                   help="requests waiting per model; beyond it new ones get 503 at once (GGSERVE_MAX_QUEUE; %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=int(env.get("GGSERVE_MAX_BODY_BYTES", d.max_body_bytes)),
                   metavar="N", help="larger request bodies get 413 (GGSERVE_MAX_BODY_BYTES; %(default)s)")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="allow browser requests from this origin; repeatable; '*' for any (GGSERVE_CORS_ORIGIN)")
    p.add_argument("--shutdown-grace", type=float, default=float(env.get("GGSERVE_SHUTDOWN_GRACE", d.shutdown_grace)),
                   metavar="S", help="on SIGTERM, seconds in-flight requests get to finish (GGSERVE_SHUTDOWN_GRACE; %(default)s)")
    args = p.parse_args(argv)
    if args.models and args.model:
        p.error("--models and --model are exclusive: pick one")
    keys = args.api_key if args.api_key is not None else _env_list(env, "GGSERVE_API_KEY")
    if args.api_keys_file:
        try:
            keys = [*keys, *read_keys_file(args.api_keys_file)]
        except OSError as exc:
            p.error(f"--api-keys-file: {exc.strerror}: {args.api_keys_file}")
    for name in ("rate_limit_rpm", "rate_limit_tpm", "max_tokens_ceiling", "memory_budget_mb"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    for name in ("max_queue", "max_body_bytes", "max_messages"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    origins = args.cors_origin if args.cors_origin is not None else _env_list(env, "GGSERVE_CORS_ORIGIN")
    return Settings(host=args.host, port=args.port, models=args.models, model=args.model, log_level=args.log_level,
                    api_keys=tuple(keys), max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
                    cors_origins=tuple(origins), shutdown_grace=args.shutdown_grace,
                    rate_limit_rpm=args.rate_limit_rpm, rate_limit_tpm=args.rate_limit_tpm,
                    rate_limit_window=int(env.get("GGSERVE_RATE_LIMIT_WINDOW", d.rate_limit_window)),
                    max_messages=args.max_messages, max_tokens_ceiling=args.max_tokens_ceiling,
                    memory_budget_mb=args.memory_budget_mb)
