"""The one table from failures to HTTP: status codes and each protocol's error body live here."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import (
    ContextLengthExceeded,
    EngineCrashed,
    EngineError,
    Failure,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    Overloaded,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiError(Exception):
    """A failure as the client should see it, before it is dressed in a protocol's shape."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# OpenAI's `type` and Anthropic's error type for each status we send.
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
                 413: "invalid_request_error", 429: "rate_limit_exceeded", 503: "server_error"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 529: "overloaded_error"}


def from_engine(exc: EngineError) -> ApiError:
    if isinstance(exc, ContextLengthExceeded):
        return ApiError(400, f"This model's maximum context length is {exc.n_ctx} tokens. However, your "
                             f"messages resulted in {exc.n_prompt} tokens. Please reduce the length of the messages.",
                        param="messages", code="context_length_exceeded")
    if isinstance(exc, InvalidRequest):
        return ApiError(400, exc.message, param=exc.param)
    if isinstance(exc, ModelNotFound):
        return ApiError(404, f"The model '{exc.model}' does not exist.", param="model", code="model_not_found")
    if isinstance(exc, Overloaded):
        return ApiError(503, str(exc), code="overloaded", headers={"Retry-After": str(max(1, round(exc.retry_after)))})
    if isinstance(exc, ModelLoadFailed):
        return ApiError(503, str(exc), param="model", code="model_load_failed")
    if isinstance(exc, EngineCrashed):
        return ApiError(500, str(exc), code="model_crashed")
    return ApiError(500, f"internal error: {exc}")


# A generation that ended with FinishReason.ERROR: its Failure's code -> status.
_FAILURE_STATUS = {"model_crashed": 500, "decode_failed": 500, "invalid_request": 400, "model_unloaded": 503}


def from_failure(failure: Failure | None) -> ApiError:
    if failure is None:
        return ApiError(500, "generation failed")
    status = _FAILURE_STATUS.get(failure.code, 500)
    code = None if failure.code == "invalid_request" else failure.code
    return ApiError(status, failure.message, param=failure.param, code=code)


def is_anthropic(request: Request) -> bool:
    return request.url.path.startswith("/v1/messages")


def openai_body(err: ApiError) -> dict:
    kind = _OPENAI_TYPES.get(err.status, "server_error" if err.status >= 500 else "invalid_request_error")
    return {"error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}}


def anthropic_body(err: ApiError) -> dict:
    kind = _ANTHROPIC_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def error_response(request: Request, err: ApiError) -> JSONResponse:
    if not is_anthropic(request):
        return JSONResponse(openai_body(err), status_code=err.status, headers=err.headers or None)
    # Anthropic says "overloaded" with its own 529, which its SDK retries.
    status = 529 if err.code == "overloaded" else err.status
    return JSONResponse(anthropic_body(err), status_code=status, headers=err.headers or None)


def _validation_message(exc: RequestValidationError) -> ApiError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return ApiError(400, "We could not parse the JSON body of your request. (The body must be valid JSON.)")
    param = ".".join(loc) or None
    where = f" at '{param}'" if param else ""
    return ApiError(400, f"Invalid request{where}: {first.get('msg', 'invalid value')}", param=param)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        return error_response(request, from_engine(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, ApiError(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, ApiError(500, "internal server error"))
