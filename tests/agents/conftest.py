"""Real coding-agent CLIs against the real server. `npm_cli` installs a CLI from the npm registry at
a pinned version into the repository's git-ignored .clis/ folder, once: later runs, and other test
modules or processes running at the same time, find it there (a file lock orders the installs)."""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIS = ROOT / ".clis"
INSTALL_TIMEOUT_S = 900
READY = ".installed"  # written last: a folder without it is a broken install, redone

log = logging.getLogger(__name__)


def npm_cli(package: str, version: str, bin_name: str) -> Path:
    """The executable `bin_name` of npm package `package` at `version`, installed on first use
    (`npm install --prefix .clis/<name>-<version> package@version`). Skips the test when node or
    npm is missing; fails it, with npm's output, when the install does."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"node/npm not found: {' and '.join(missing)} missing on PATH, needed to install "
                    f"{package}@{version}")
    CLIS.mkdir(exist_ok=True)
    name = f"{re.sub(r'[^A-Za-z0-9._-]+', '+', package.lstrip('@'))}-{version}"
    prefix = CLIS / name
    exe = prefix / "node_modules" / ".bin" / bin_name
    with (CLIS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if this process dies
        if not (prefix / READY).is_file():
            _install(package, version, prefix)
    if not exe.exists():
        pytest.fail(f"{package}@{version} is installed in {prefix} but has no executable {bin_name!r}")
    return exe


def _install(package: str, version: str, prefix: Path) -> None:
    """Into a fresh folder beside `prefix`, renamed into place once complete (npm's .bin links are
    relative, so the move keeps them working)."""
    staging = prefix.with_name(prefix.name + ".partial")
    for stale in (staging, prefix):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir()
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(staging), f"{package}@{version}"]
    log.info("installing %s@%s into %s", package, version, prefix)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` took longer than {INSTALL_TIMEOUT_S} s")
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    (staging / READY).write_text(f"{package}@{version}\n")
    staging.rename(prefix)


@pytest.fixture(scope="session")
def install_cli():
    """`install_cli(package, version, bin_name) -> Path` for tests that take it as a fixture."""
    return npm_cli
