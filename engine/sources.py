"""Where a GGUF file comes from: a local path, the Hugging Face hub, or an installed package."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from .config import Source
from .errors import ModelLoadFailed

log = logging.getLogger(__name__)


def resolve(model_id: str, source: Source) -> str:
    """Return a local file path for the model's GGUF, downloading it if the source says so."""
    if source.path:
        path = Path(source.path).expanduser()
    elif source.package:
        path = _package_file(model_id, source.package, source.file or "")
    else:
        path = _hub_file(model_id, source)
    if not path.is_file():
        raise ModelLoadFailed(model_id, f"no such file: {path}")
    return str(path)


def _package_file(model_id: str, package: str, file: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelLoadFailed(model_id, f"package {package!r} is not installed") from exc
    return Path(str(root.joinpath(file)))


def _hub_file(model_id: str, source: Source) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ModelLoadFailed(model_id, "huggingface_hub is not installed") from exc
    log.info("fetching %s/%s (revision %s) from the Hugging Face hub", source.hf, source.file, source.revision)
    try:
        return Path(hf_hub_download(repo_id=source.hf, filename=source.file, revision=source.revision))
    except Exception as exc:  # the hub raises many kinds; each means the same to us
        raise ModelLoadFailed(model_id, f"hub download failed: {exc}") from exc
