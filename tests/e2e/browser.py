"""A headless Chromium for the playground test: Debian's `chromium` and `chromium-driver`, installed
with apt-get on first use (so the test needs no browser download of its own), driven by Selenium
through the system chromedriver."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

PACKAGES = ("chromium", "chromium-driver")
INSTALL_TIMEOUT_S = 900
LOCK = Path(tempfile.gettempdir()) / "ggserve-apt-chromium.lock"  # one apt-get at a time across test processes


def binaries() -> tuple[str, str] | None:
    """(browser, driver) paths when both are installed."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def ensure_chromium() -> tuple[str, str]:
    """The browser and driver, installed if missing; skips the test only where apt-get cannot run."""
    found = binaries()
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("chromium/chromedriver are missing and there is no apt-get to install them "
                    f"(apt-get install {' '.join(PACKAGES)})")
    if os.geteuid() != 0:
        pytest.skip(f"chromium/chromedriver are missing and installing them needs root: apt-get install "
                    f"{' '.join(PACKAGES)}")
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binaries() is None:
            _apt_install()
    found = binaries()
    if found is None:
        pytest.fail(f"apt-get installed {' '.join(PACKAGES)} but chromium or chromedriver is still not on PATH")
    return found


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        log.info("running %s", " ".join(cmd))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(cmd)}` took longer than {INSTALL_TIMEOUT_S} s")
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(cmd)}` failed ({done.returncode}), so the browser test cannot run:\n"
                        f"{(done.stdout + done.stderr)[-2000:]}")


def chrome(browser: str, driver: str, width: int = 1280, height: int = 900):
    """A headless Chrome session on the system browser and driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
