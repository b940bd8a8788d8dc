"""The Response object, and the stream of typed events around the output items: created and
in_progress first, the items' events, then exactly one of completed / incomplete / failed."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from engine import Delta, FinishReason, Usage, usage_of

from ... import sse
from ...errors import ApiError
from .output import OutputItems


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


@dataclass
class Echo:
    """What a Response repeats of its request."""

    model: str
    fields: dict[str, Any] = field(default_factory=dict)  # instructions, tools, text, reasoning...
    id: str = field(default_factory=new_response_id)
    created_at: int = field(default_factory=lambda: int(time.time()))


def usage_body(usage: Usage) -> dict:
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens}


def response_object(echo: Echo, status: str, output: list[dict], usage: Usage | None = None,
                    error: dict | None = None, incomplete: str | None = None) -> dict:
    done = status in ("completed", "incomplete", "failed")
    return {"id": echo.id, "object": "response", "created_at": echo.created_at,
            "completed_at": int(time.time()) if done else None, "status": status, "background": False,
            "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": echo.model, "output": output, **echo.fields,
            "usage": usage_body(usage) if usage is not None else None}


class ResponseRenderer:
    """Renders one generation as a Response (final()) or as its stream of events; `on_done` gets
    the finished Response (to store it)."""

    def __init__(self, echo: Echo, items: OutputItems, on_done: Callable[[dict], None] = lambda r: None):
        self._echo = echo
        self._items = items
        self._on_done = on_done
        self._seq = -1

    def _frame(self, event: dict) -> bytes:
        self._seq += 1
        return sse.event(event["type"], {"type": event["type"], "sequence_number": self._seq, **event})

    def _lifecycle(self, kind: str, status: str, **extra: Any) -> bytes:
        return self._frame({"type": kind, "response": response_object(self._echo, status, self._output(), **extra)})

    def _output(self) -> list[dict]:
        return [item for item in self._items.items if item["status"] != "in_progress"]

    def start(self) -> list[bytes]:
        return [self._lifecycle("response.created", "in_progress"), self._lifecycle("response.in_progress", "in_progress")]

    def on_delta(self, delta: Delta) -> list[bytes]:
        return [self._frame(e) for e in self._items.push(delta)]

    def on_finish(self, delta: Delta) -> list[bytes]:
        frames = self.on_delta(delta)
        status, reason = finish_status(delta)
        frames += [self._frame(e) for e in self._items.close("incomplete" if reason else "completed")]
        response = response_object(self._echo, status, self._output(), usage_of([delta], 1), incomplete=reason)
        self._on_done(response)
        return frames + [self._frame({"type": f"response.{status}", "response": response})]

    def error(self, err: ApiError) -> list[bytes]:
        frames = [self._frame(e) for e in self._items.close("incomplete")]
        failed = {"code": err.code or ("server_error" if err.status >= 500 else "invalid_request"),
                  "message": err.message}
        return frames + [self._lifecycle("response.failed", "failed", error=failed)]

    def keepalive(self) -> bytes:
        # A real event, not a comment: Codex counts only events against its idle timeout.
        return self._lifecycle("response.in_progress", "in_progress")

    def final(self, deltas: list[Delta]) -> dict:
        """The whole Response of a generation that did not stream."""
        for delta in deltas:
            self._items.push(delta)
        status, reason = finish_status(deltas[-1])
        self._items.close("incomplete" if reason else "completed")
        finals = [d for d in deltas if d.finish_reason is not None]
        response = response_object(self._echo, status, self._output(), usage_of(finals, 1), incomplete=reason)
        self._on_done(response)
        return response


def finish_status(final: Delta) -> tuple[str, str | None]:
    if final.finish_reason is FinishReason.LENGTH:
        return "incomplete", "max_output_tokens"
    return "completed", None
