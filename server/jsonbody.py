"""CheckedRoute: every JSON body is parsed once and checked before FastAPI validates it.

A JSON string may hold a lone UTF-16 surrogate ("\\ud800"), which Python's json module decodes
into a str that is not valid Unicode: it fails later, wherever the text is encoded to UTF-8 (the
tokenizer, a log line, the error body that names it) and used to turn into a 500. Refusing it
here, once, covers every field of every route, present and future."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable, Coroutine, Iterator

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .errors import ApiError

log = logging.getLogger(__name__)

SURROGATE = re.compile("[\ud800-\udfff]")  # a lone UTF-16 half, never valid in text
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD]")  # and U+D000..U+D7FF: a superset is enough
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_KEY_SHOWN = 64  # characters of an odd key that an error message repeats

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# Where a value sits, as a linked list (parent, step): a clean body's walk builds no strings.
Where = tuple["Where", str | int] | None


class CheckedRoute(APIRoute):
    """An APIRoute whose JSON body must be an object free of lone surrogates."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:  # GET routes: nothing to check
            return handler

        async def checked(request: Request) -> Response:
            try:
                await parsed_body(request)
            except ClientDisconnect:  # gone before its body was whole: no fault of ours, nobody reads this
                log.debug("client went away while sending the body of %s", request.url.path)
                return Response(status_code=499)
            return await handler(request)

        return checked


async def parsed_body(request: Request) -> Any:
    """The body parsed and checked. Starlette keeps both the bytes and the parsed value on the
    request, so FastAPI's own `await request.json()` after this neither reads nor parses again."""
    if not await request.body():
        return None  # FastAPI reports the missing body itself
    try:
        value = await request.json()
    except json.JSONDecodeError as exc:
        raise _unparsable(exc.msg, exc.pos) from None
    except UnicodeDecodeError as exc:  # JSON text must be UTF-8 (or UTF-16/32, which json detects)
        raise _unparsable(exc.reason, exc.start) from None
    except ValueError as exc:  # an integer literal past int()'s digit limit, say
        raise _unparsable(str(exc), 0) from None
    except RecursionError:  # json's C scanner gives up near the interpreter's recursion limit
        raise ApiError(400, "The JSON body is nested too deeply.") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"The request body must be a JSON object; got a JSON {_kind(value)}.")
    check_text(value, await request.body())
    return value


def _unparsable(why: str, pos: int) -> RequestValidationError:
    """The same error FastAPI raises for a body it cannot parse, so errors.py words it as ever."""
    return RequestValidationError([{"type": "json_invalid", "loc": ("body", pos), "msg": "JSON decode error",
                                    "input": {}, "ctx": {"error": why}}])


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def check_text(value: Any, raw: bytes | None = None) -> None:
    """Raise a 400 naming the first string (key or value) that holds a surrogate code point.
    `raw`: the bytes `value` was parsed from, if known. The walk that finds the path runs at
    Python speed (up to ~25 ms per MB of tiny strings), so two C-speed tests first rule out the
    usual body, which holds no surrogate at all."""
    if raw is not None and not _may_hold_surrogate(raw):
        return
    if _encodes(value):
        return
    found = find_surrogate(value)
    if found is not None:
        path, char = found
        where = path_text(path)
        log.debug("refusing a body: lone surrogate U+%04X at %s", ord(char), where)
        raise ApiError(400, f"Invalid request at '{where}': the text holds the lone surrogate U+{ord(char):04X}, "
                            "which is not valid Unicode (a surrogate is only valid as half of a UTF-16 pair).",
                       param=where or None)


def _may_hold_surrogate(raw: bytes) -> bool:
    """False when json.loads(raw) cannot have produced a surrogate: UTF-8 text with no "\\uD..."
    escape and no byte 0xED (a surrogate's first byte, which json's 'surrogatepass' decoding lets
    through). UTF-16/32 bodies are not ruled out this way."""
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return True
    return b"\xed" in raw or _SURROGATE_ESCAPE.search(raw) is not None


def _encodes(value: Any) -> bool:
    """Whether the whole value serialises to UTF-8: json's C encoder, then one encode."""
    try:
        json.dumps(value, ensure_ascii=False, check_circular=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):  # the walk decides; it does not recurse
        return False
    return True


def find_surrogate(value: Any) -> tuple[Where, str] | None:
    """The first string (document order) holding a surrogate, with where it is. Depth-first with
    an explicit stack of iterators, not recursion: a 100k-deep body must not overflow the stack,
    and the strings of a long list are checked in one tight loop."""
    if type(value) is str:
        return None if value.isascii() else _surrogate_in(value, None)
    stack: list[tuple[Iterator[tuple[str | int, Any]], Where]] = []
    _enter(stack, value, None)
    while stack:
        children, path = stack[-1]
        for step, child in children:
            if type(step) is str and not step.isascii() and (found := _surrogate_in(step, (path, step))):
                return found  # a key: reported before anything under it
            kind = type(child)
            if kind is str:
                if not child.isascii() and (found := _surrogate_in(child, (path, step))):
                    return found
            elif kind is dict or kind is list:
                _enter(stack, child, (path, step))
                break  # go down first; this container's iterator resumes afterwards
        else:
            stack.pop()
    return None


def _enter(stack: list, container: Any, path: Where) -> None:
    if type(container) is dict:
        stack.append((iter(container.items()), path))
    elif type(container) is list:
        stack.append((enumerate(container), path))


def _surrogate_in(text: str, path: Where) -> tuple[Where, str] | None:
    # Callers skip ASCII strings first (str.isascii is O(1) in CPython): most strings are.
    m = SURROGATE.search(text)
    return (path, m.group()) if m else None


def path_text(path: Where) -> str:
    """`messages[0].content`, `metadata["odd key"]`: the param named in the error."""
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    out = ""
    for step in reversed(steps):
        if isinstance(step, int):
            out += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step):
            out += f".{step}" if out else step
        else:  # json.dumps escapes a surrogate, so the error body itself can still be encoded
            out += f"[{json.dumps(step[:_KEY_SHOWN])}]"
    return out
