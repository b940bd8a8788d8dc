"""POST /v1/embeddings for models marked `embedding: true`."""

from __future__ import annotations

import base64
import struct

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ..errors import ApiError
from ..access import note
from ..handlers import engine_for
from ..jsonbody import CheckedRoute

router = APIRouter(route_class=CheckedRoute)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    # Strict: a JSON true is no token id (pydantic would read it as 1).
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: str = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


def inputs_of(body: EmbeddingRequest) -> list[str | list[int]]:
    data = body.input
    if isinstance(data, str):
        return [data]
    if not data:
        raise ApiError(400, "'input' must not be empty", param="input")
    if all(isinstance(x, int) for x in data):
        return [list(data)]  # type: ignore[arg-type]
    return list(data)  # type: ignore[arg-type]


def encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    if body.encoding_format not in ("float", "base64"):
        raise ApiError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    async with engine_for(request, body.model, embedding=True) as engine:
        if body.dimensions is not None and body.dimensions != engine.info.embedding_size:
            raise ApiError(400, f"'dimensions' can only be {engine.info.embedding_size} for this model (it cannot "
                                "shorten its vectors)", param="dimensions")
        vectors, n_tokens = await engine.embed(inputs_of(body))
    note(prompt_tokens=n_tokens)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)}
                 for i, v in enumerate(vectors)],
        "model": engine.spec.id,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }
