"""/health and /stats: whether the default model can generate, and each loaded model's counters."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engine import Registry

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    reg: Registry = request.app.state.registry
    engine = reg.loaded(reg.default_id)
    if engine is not None:
        return JSONResponse({"status": "ok"})
    crashes = reg.crashes.get(reg.default_id)
    body = {"status": "unavailable"}
    if crashes:  # restarting after a crash
        body["last_crash"] = crashes.last_reason
    return JSONResponse(body, status_code=503)


@router.get("/stats")
async def stats(request: Request) -> dict:
    """Engine counters per loaded model (published by its worker after each step), with the
    worker's pid and restarts: for tests and operators."""
    reg: Registry = request.app.state.registry
    out = {}
    for spec in reg.specs:
        engine = reg.loaded(spec.id)
        if engine is not None:
            crashes = reg.crashes.get(spec.id)
            out[spec.id] = {**dataclasses.asdict(engine.stats()), "pid": engine.pid,
                            "restarts": crashes.count if crashes else 0}
    return out
