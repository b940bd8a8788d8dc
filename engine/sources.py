"""Where a GGUF file comes from: a local path, the Hugging Face hub, or an installed package.
The worker resolves a model's file here; `ggserve pull` and `ggserve models` look and fetch here."""

from __future__ import annotations

import importlib.resources
import logging
import os
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
        path = fetch_model_file(model_id, source)
    if not path.is_file():
        raise ModelLoadFailed(model_id, f"no such file: {path}")
    return str(path)


def find_model_file(source: Source) -> Path | None:
    """The source's file where it is on this machine, or None when it is not there. Never
    downloads, so it also answers offline."""
    if source.path:
        path: Path | None = Path(source.path).expanduser()
    elif source.package:
        try:
            path = _package_file("-", source.package, source.file or "")
        except ModelLoadFailed:
            return None
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source.hf, source.file, revision=source.revision)
        path = Path(found) if isinstance(found, str) else None  # else not cached, or cached as absent
    return path if path is not None and path.is_file() else None


def fetch_model_file(model_id: str, source: Source) -> Path:
    """A hub source's file, from huggingface_hub's cache or downloaded into it (with its progress
    bar). Offline (HF_HUB_OFFLINE=1), a file not in the cache is named as missing."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise ModelLoadFailed(model_id, "huggingface_hub is not installed") from exc
    where = f"{source.hf}:{source.file} (revision {source.revision or 'main'})"
    log.info("fetching %s from the Hugging Face hub", where)
    try:
        return Path(hf_hub_download(repo_id=source.hf, filename=source.file, revision=source.revision))
    except LocalEntryNotFoundError as exc:
        if hub_offline():
            raise ModelLoadFailed(model_id, f"{where} is not in the Hugging Face cache, and HF_HUB_OFFLINE=1 "
                                            "forbids downloading it") from exc
        raise ModelLoadFailed(model_id, f"hub download of {where} failed: {exc}") from exc
    except Exception as exc:  # the hub raises many kinds; each means the same to us
        raise ModelLoadFailed(model_id, f"hub download of {where} failed: {exc}") from exc


def hub_gguf_files(repo: str, revision: str | None = None) -> list[str]:
    """The GGUF files of a hub repository: its file list online, its cached snapshot offline."""
    from huggingface_hub import HfApi, snapshot_download

    if hub_offline():
        try:
            root = Path(snapshot_download(repo, revision=revision, local_files_only=True))
        except Exception as exc:  # not cached: offline, nothing else can be known
            raise ModelLoadFailed(repo, f"{repo} (revision {revision or 'main'}) is not in the Hugging Face cache, "
                                        "and HF_HUB_OFFLINE=1 forbids listing it on the hub") from exc
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    else:
        try:
            files = HfApi().list_repo_files(repo, revision=revision)
        except Exception as exc:
            raise ModelLoadFailed(repo, f"listing {repo} on the hub failed: {exc}") from exc
    return sorted(f for f in files if f.lower().endswith(".gguf"))


def hub_offline() -> bool:
    """huggingface_hub's own switch, read as it reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _package_file(model_id: str, package: str, file: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelLoadFailed(model_id, f"package {package!r} is not installed") from exc
    return Path(str(root.joinpath(file)))
