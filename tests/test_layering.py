"""server -> engine -> llama_cpp, and nothing else: read every import with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTTP_SIDE = {"fastapi", "starlette", "pydantic", "pydantic_settings", "uvicorn", "sse_starlette", "server"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def test_engine_never_imports_the_http_side():
    for path in (ROOT / "engine").rglob("*.py"):
        leaked = {n for n in imports(path) if top(n) in HTTP_SIDE}
        assert not leaked, f"{path.relative_to(ROOT)} imports {leaked}"


def test_only_the_backend_package_imports_llama_cpp():
    users = {p.relative_to(ROOT).as_posix() for p in (ROOT / "engine").rglob("*.py")
             if any(top(n) == "llama_cpp" for n in imports(p))}
    assert users and all(u.startswith("engine/backend/") for u in users), users


def test_server_uses_only_the_engine_public_api_and_never_llama_cpp():
    for path in (ROOT / "server").rglob("*.py"):
        for name in imports(path):
            assert top(name) != "llama_cpp", f"{path.relative_to(ROOT)} imports llama_cpp"
            assert not name.startswith("engine."), f"{path.relative_to(ROOT)} imports {name}; use `from engine import ...`"
