"""`ggserve`: parse flags, build the app, run uvicorn; or `ggserve pull ...` / `ggserve models` /
`ggserve ray ...` (server/ray)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from engine import ConfigError

from . import commands
from .access import RequestIdFilter
from .app import create_app, load_config
from .settings import parse_args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in commands.COMMANDS:
        sys.exit(commands.run(argv))
    if argv and argv[0] == "ray":  # the optional extra ggserve[ray]: imported only when asked for
        from .ray.cli import main as ray_main

        sys.exit(ray_main(argv[1:]))
    settings = parse_args(argv)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    try:
        config = load_config(settings)
    except ConfigError as exc:
        sys.exit(f"ggserve: {exc}")
    app = create_app(settings, config=config)
    # Our access log (server.access) has the request id, model and tokens; uvicorn's is off.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                timeout_graceful_shutdown=settings.shutdown_grace)


if __name__ == "__main__":
    main()
