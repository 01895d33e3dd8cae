"""Headless Chromium for the browser tests, provisioned like the stack's servers: found on the
PATH, or installed from Debian's own packages (``chromium`` and ``chromium-driver``, the same
version, so the driver always matches the browser). Playwright's ``install chromium`` is not
used: it downloads a browser build from a CDN, which machines limited to package registries
cannot reach."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("chromium", "chromium-driver")


class BrowserUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Chromium:
    browser: Path
    driver: Path


def _found() -> Chromium | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return Chromium(Path(browser), Path(driver)) if browser and driver else None


def ensure_chromium() -> Chromium:
    found = _found()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        raise BrowserUnavailable(
            "chromium and chromedriver are not on the PATH and this is not a Debian-like "
            f"system (no apt-get): install the packages {' '.join(PACKAGES)} or equivalent")
    if os.geteuid() != 0:
        raise BrowserUnavailable(
            "chromium and chromedriver are not on the PATH and installing them needs root: "
            f"run `sudo apt-get install -y {' '.join(PACKAGES)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrowserUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")
    found = _found()
    if found is None:
        raise BrowserUnavailable(f"installed {' '.join(PACKAGES)} but found no chromium or "
                                 "chromedriver on the PATH")
    return found
