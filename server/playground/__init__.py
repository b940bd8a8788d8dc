"""The chat playground: a page at / and its files under /ui/, plain HTML/JS/CSS shipped in the
package (no build step, nothing fetched from elsewhere at run time). It talks to this server's own
OpenAI API, so with API keys set the page is open and asks for a key (see access.OPEN_PATHS)."""

from __future__ import annotations

import importlib.resources

from fastapi import APIRouter
from fastapi.responses import Response

from ..errors import ApiError

router = APIRouter()

TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
         "css": "text/css; charset=utf-8"}
FILES = ("app.js", "markdown.js", "style.css")
# The page runs only its own files and talks only to this server, so a reply that got markup
# past the Markdown renderer still could not run a script or send anything elsewhere.
HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def _file(name: str) -> Response:
    body = importlib.resources.files(__package__).joinpath(name).read_bytes()
    return Response(body, media_type=TYPES[name.rpartition(".")[2]], headers=HEADERS)


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return _file("index.html")


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    if name not in FILES:  # only the shipped files: a name is never a path
        raise ApiError(404, f"No such file: /ui/{name}")
    return _file(name)
