"""create_app(): the FastAPI application, its lifespan and its routes."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from engine import ModelsConfig, Registry, builtin_default, load_models, single_model

from . import errors
from .access import AccessMiddleware
from .metrics import Metrics
from .metrics import router as metrics_router
from .ratelimit import RateLimiter
from .anthropic.routes import router as anthropic_router
from .openai.embeddings import router as embeddings_router
from .openai.responses.routes import router as responses_router
from .openai.responses.store import ResponseStore
from .openai.routes import router as openai_router
from .openai.tokens import router as tokens_router
from .playground import router as playground_router
from .settings import Settings
from .status import router as status_router

log = logging.getLogger(__name__)


def load_config(settings: Settings) -> ModelsConfig:
    """--model wins, then --models, then ./models.yaml, then the embedded default model."""
    if settings.model:
        return single_model(settings.model)
    if settings.models:
        return load_models(settings.models)
    if Path("models.yaml").is_file():
        return load_models("models.yaml")
    return builtin_default()


async def unload_idle_models(reg: Registry, every: float = 1.0) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await reg.unload_idle()
        except Exception:  # keep reaping; one failed close must not stop the others
            log.exception("unloading idle models failed")


def create_app(settings: Settings | None = None, config: ModelsConfig | None = None,
               registry: Registry | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        budget = settings.memory_budget_mb * 1024 * 1024 or None
        reg = registry or Registry(config or load_config(settings), max_queue=settings.max_queue, memory_budget=budget,
                                   log_level=settings.log_level)
        app.state.registry = reg
        metrics.watch(reg)
        app.state.started = int(time.time())
        await reg.preload()  # /health is 200 only once the default model can generate
        reaper = asyncio.create_task(unload_idle_models(reg))
        yield
        reaper.cancel()
        await reg.close()

    app = FastAPI(title="ggserve", lifespan=lifespan)
    errors.install(app)
    app.state.settings = settings
    app.state.responses = ResponseStore(settings.responses_store_items, settings.responses_store_mb << 20,
                                        settings.responses_store_ttl)
    app.state.metrics = metrics = Metrics()
    app.include_router(metrics_router)
    app.add_middleware(AccessMiddleware, api_keys=settings.api_keys, max_body_bytes=settings.max_body_bytes,
                       metrics=metrics,
                       limiter=RateLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm,
                                           settings.rate_limit_window))
    if settings.cors_origins:  # outermost, so browsers' preflight requests need no key
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["x-request-id"])
    app.include_router(openai_router)
    app.include_router(anthropic_router)
    app.include_router(embeddings_router)
    app.include_router(responses_router)
    app.include_router(status_router)
    app.include_router(tokens_router)
    if not settings.no_ui:
        app.include_router(playground_router)

    return app
