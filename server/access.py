"""Every request's way in and out: API keys, body size, X-Request-ID, structured access logs."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response
from .ratelimit import RateLimiter

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger("ggserve.access")
# Open without a key: the health check, and the playground page and its files (the page asks for a
# key and sends it with its API calls, which need one like any other).
OPEN_PATHS = {"/health", "/"}
OPEN_PREFIXES = ("/ui/",)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(slots=True)
class RequestLog:
    """What the handlers learn about a request, for its access-log line."""

    id: str
    started: float = 0.0  # perf_counter at arrival
    model: str = "-"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None  # streams: arrival to the first generated text
    replica: str | None = None  # on Ray Serve: the replica that served it (x-ggserve-replica)


CURRENT: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar("ggserve_request", default=None)


def first_token_seconds() -> float | None:
    """Seconds since the current request arrived (for time to first token)."""
    entry = CURRENT.get()
    return time.perf_counter() - entry.started if entry else None


def note(model: str | None = None, prompt_tokens: int = 0, completion_tokens: int = 0,
         ttft_ms: float | None = None, replica: str | None = None) -> None:
    entry = CURRENT.get()
    if entry is not None:
        entry.model = model or entry.model
        entry.replica = replica or entry.replica
        entry.prompt_tokens += prompt_tokens
        entry.completion_tokens += completion_tokens
        entry.ttft_ms = entry.ttft_ms if ttft_ms is None else ttft_ms


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (`-` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        entry = CURRENT.get()
        record.request_id = entry.id if entry else "-"
        return True


class AccessMiddleware:
    def __init__(self, app: ASGIApp, api_keys: tuple[str, ...] = (), max_body_bytes: int = 16 << 20,
                 limiter: RateLimiter | None = None, metrics: Metrics | None = None):
        self.app = app
        self._keys = [k.encode() for k in api_keys]
        self._max_body = max_body_bytes
        self._limiter = limiter or RateLimiter()
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        entry = RequestLog(id=given if _SAFE_ID.match(given) else uuid.uuid4().hex, started=time.perf_counter())
        token = CURRENT.set(entry)
        started, status = time.perf_counter(), [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", entry.id.encode())]
                if entry.replica:
                    message["headers"].append((b"x-ggserve-replica", entry.replica.encode()))
            await send(message)

        client = self._client_key(scope, headers)
        try:
            err = self._refusal(scope, headers)
            if err is None and self._limiter.enabled and not is_open(scope["path"]):
                err = self._limiter.admit(client)
            if err is None:
                receive, err = await self._bounded(headers, receive)
            if err is not None:
                await error_response(Request(scope), err)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._limiter.spend(client, entry.prompt_tokens + entry.completion_tokens)
            seconds = time.perf_counter() - started
            if self._metrics is not None:
                self._metrics.observe_request(scope["path"], status[0], seconds, entry.model, entry.prompt_tokens,
                                              entry.completion_tokens)
            log.info("method=%s path=%s status=%d model=%s prompt_tokens=%d completion_tokens=%d duration_ms=%.1f "
                     "ttft_ms=%s", scope["method"], scope["path"], status[0], entry.model, entry.prompt_tokens,
                     entry.completion_tokens, seconds * 1000, "-" if entry.ttft_ms is None else f"{entry.ttft_ms:.1f}")
            CURRENT.reset(token)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> ApiError | None:
        """Checked before the body is read or validated."""
        if self._keys and not is_open(scope["path"]) and scope["method"] != "OPTIONS":
            if not self._authorized(headers):
                return ApiError(401, "Missing or invalid API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
                                code="invalid_api_key")
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self._max_body:
            return ApiError(413, f"The request body is larger than {self._max_body} bytes.", code="request_too_large")
        return None

    def _client_key(self, scope: Scope, headers: dict[str, str]) -> str:
        """Whom limits apply to: the configured key the request authenticated with, else the client
        address. Only a key the server knows may name a bucket: keyed by whatever token was sent, a
        client could make up a new one per request and never be limited."""
        key = self._matching_key(headers) if self._keys else None
        if key is not None:
            return "key:" + hashlib.sha256(key).hexdigest()
        return "addr:" + str((scope.get("client") or ("-",))[0])

    def _authorized(self, headers: dict[str, str]) -> bool:
        return self._matching_key(headers) is not None

    def _matching_key(self, headers: dict[str, str]) -> bytes | None:
        """The configured key that the bearer token or x-api-key matches, if any."""
        auth = headers.get("authorization", "")
        candidates = [auth[7:].strip().encode()] if auth.lower().startswith("bearer ") else []
        if "x-api-key" in headers:
            candidates.append(headers["x-api-key"].encode())
        # Compare against every key, in constant time each, so timing says nothing about a match.
        match = None
        for given in candidates:
            for key in self._keys:
                if hmac.compare_digest(given, key):
                    match = key
        return match

    async def _bounded(self, headers: dict[str, str], receive: Receive) -> tuple[Receive, ApiError | None]:
        """A body without a length is read up to the limit here and replayed to the app."""
        if "content-length" in headers or "transfer-encoding" not in headers:
            return receive, None
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self._max_body:
                return receive, ApiError(413, f"The request body is larger than {self._max_body} bytes.",
                                         code="request_too_large")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        return replay, None
