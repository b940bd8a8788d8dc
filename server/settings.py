"""Server knobs from command-line flags, each also settable as a GGSERVE_* environment variable.
Each knob is written once, as a field of Settings: its flag, variable, type and help follow."""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence


def knob(default: Any, help: str, minimum: int | None = None, choices: tuple[str, ...] = (),
         metavar: str | None = None, flag: bool = True) -> Any:
    """A Settings field: `minimum` is checked at parse time; flag=False: environment only."""
    meta = {"help": help, "minimum": minimum, "choices": choices, "metavar": metavar, "flag": flag}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    host: str = knob("127.0.0.1", "address to bind")
    port: int = knob(8080, "port")
    models: str | None = knob(None, "models.yaml registry (default ./models.yaml, else the embedded SmolLM2)",
                              metavar="PATH")
    model: str | None = knob(None, "serve this one GGUF file instead of a registry", metavar="PATH")
    log_level: str = knob("info", "log level", choices=("debug", "info", "warning", "error"))
    api_keys: tuple[str, ...] = knob((), "require this key on every API route; repeatable (env: comma-separated)",
                                     metavar="KEY")
    api_keys_file: str | None = knob(None, "more keys, one per line", metavar="PATH")
    rate_limit_rpm: int = knob(0, "requests per minute per key, 0 = off", minimum=0, metavar="N")
    rate_limit_tpm: int = knob(0, "prompt + completion tokens per minute per key, 0 = off", minimum=0, metavar="N")
    max_messages: int = knob(4096, "messages per request", minimum=1, metavar="N")
    max_tokens_ceiling: int = knob(0, "refuse max_tokens above N, 0 = no ceiling", minimum=0, metavar="N")
    memory_budget_mb: int = knob(0, "weights + KV cache of all loaded models; beyond it idle models are unloaded, "
                                    "least recently used first; 0 = no budget", minimum=0, metavar="MB")
    max_queue: int = knob(64, "requests waiting per model; beyond it new ones get 503 at once", minimum=1,
                          metavar="N")
    max_body_bytes: int = knob(16 * 1024 * 1024, "larger request bodies get 413", minimum=1, metavar="N")
    cors_origins: tuple[str, ...] = knob((), "allow browser requests from this origin; repeatable; '*' for any",
                                         metavar="ORIGIN")
    shutdown_grace: float = knob(30.0, "on SIGTERM, seconds in-flight requests get to finish", metavar="S")
    responses_store_items: int = knob(1000, "stored Responses (store: true) kept at most, least recently used "
                                            "out first", minimum=0, metavar="N")
    responses_store_mb: int = knob(256, "memory the stored Responses may take", minimum=0, metavar="MB")
    responses_store_ttl: float = knob(86400.0, "seconds a stored Response is kept after its last use",
                                      metavar="S")
    no_ui: bool = knob(False, "do not serve the chat playground page at /")
    rate_limit_window: int = knob(60, "seconds of the rate-limit window (tests shorten it)", flag=False)


COMMANDS_HELP = """commands (ggserve COMMAND --help says more):
  ggserve pull REPO[:FILE] [--revision REV] [--add ID]   fetch a GGUF from the Hugging Face hub
  ggserve pull --models PATH                             fetch every hub model of a models.yaml
  ggserve models [--models PATH]                         the models, and whether each file is here"""

# Flags whose name is not the field's.
FLAG_NAMES = {"api_keys": "--api-key", "cors_origins": "--cors-origin"}


def env_name(name: str) -> str:
    return "GGSERVE_" + FLAG_NAMES.get(name, "--" + name).lstrip("-").replace("-", "_").upper()


def read_keys_file(path: str) -> list[str]:
    """One key per line; blank lines and # comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _kind(f) -> type:
    default = f.default if f.default is not MISSING else f.default_factory()
    return str if default is None or isinstance(default, tuple) else type(default)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _env_default(f, env: dict[str, str]) -> Any:
    raw = env.get(env_name(f.name))
    default = f.default if f.default is not MISSING else f.default_factory()
    if raw is None:
        return default
    if isinstance(default, tuple):
        return tuple(v.strip() for v in raw.split(",") if v.strip())
    if isinstance(default, bool):  # bool("0") is True: a switch's variable is read as words
        if raw.strip().lower() not in _TRUE + _FALSE:
            raise ValueError(f"{env_name(f.name)}={raw!r}: expected one of {', '.join(_TRUE[:2] + _FALSE[:2])}")
        return raw.strip().lower() in _TRUE
    try:
        return _kind(f)(raw)
    except ValueError:
        raise ValueError(f"{env_name(f.name)}={raw!r} is not a valid {_kind(f).__name__}") from None


def build_parser(env: dict[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ggserve",
        description="OpenAI- and Anthropic-compatible server for GGUF models (llama.cpp, continuous batching). "
                    "Every flag can also be set with the environment variable named after it.",
        epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Settings):
        meta = f.metadata
        if not meta["flag"]:
            continue
        flag = FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        kw: dict[str, Any] = {"dest": f.name, "metavar": meta["metavar"], "default": _env_default(f, env)}
        if meta["choices"]:
            kw["choices"] = list(meta["choices"])
        if isinstance(kw["default"], tuple):
            kw.update(action="append", default=None)
        elif isinstance(kw["default"], bool):  # a switch: present or not (its variable may turn it on)
            kw.update(action="store_true")
            del kw["metavar"]
        else:
            kw["type"] = _kind(f)
        shown = "" if isinstance(kw.get("default"), (tuple, type(None))) else "; %(default)s"
        p.add_argument(flag, help=f"{meta['help']} ({env_name(f.name)}{shown})", **kw)
    return p


def parse_args(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    try:
        p = build_parser(env)
    except ValueError as exc:
        raise SystemExit(f"ggserve: {exc}") from None
    args = vars(p.parse_args(argv))
    if args["models"] and args["model"]:
        p.error("--models and --model are exclusive: pick one")
    for f in fields(Settings):
        if isinstance(args.get(f.name, ()), list):
            args[f.name] = tuple(args[f.name])
        elif f.name in args and args[f.name] is None and isinstance(_env_default(f, env), tuple):
            args[f.name] = _env_default(f, env)
        minimum = f.metadata["minimum"]
        if minimum is not None and args[f.name] < minimum:
            p.error(f"--{f.name.replace('_', '-')} must be at least {minimum}")
    if args["api_keys_file"]:
        try:
            args["api_keys"] = (*args["api_keys"], *read_keys_file(args["api_keys_file"]))
        except OSError as exc:
            p.error(f"--api-keys-file: {exc.strerror}: {args['api_keys_file']}")
    args["rate_limit_window"] = _env_default(next(f for f in fields(Settings) if f.name == "rate_limit_window"), env)
    return Settings(**args)
