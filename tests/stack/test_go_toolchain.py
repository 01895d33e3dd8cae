"""FerretDB builds on a machine without a usable Go: the stack fetches its pinned toolchain.

No server is started. The system Go is hidden from PATH; the toolchain's zip comes from the
stack's download cache (the user's, so CI downloads it once per machine, not once per run) and
is verified and unpacked into a temporary stack folder, like on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from polystream.settings import Settings, StackSettings
from polystream.stack.ferretdb import FerretDBServer
from polystream.stack.toolchains import GO_TOOLCHAIN

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# A cold build (empty Go build cache for this toolchain) took about 3 minutes on the shared
# 2-core machine; a warm one takes seconds.
BOUND_S = 420


def _path_without_go() -> str:
    kept = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "go").exists()]
    return os.pathsep.join(kept)


def test_ferretdb_builds_with_the_pinned_toolchain_when_go_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_without_go())
    monkeypatch.delenv("GOROOT", raising=False)
    assert shutil.which("go") is None
    home = tmp_path / "stack"
    settings = Settings(stack=StackSettings(home=home))  # default download cache: reused
    server = FerretDBServer(settings, home)
    lines: list[str] = []
    server.progress = lines.append

    t0 = time.monotonic()
    server.provision()
    took = time.monotonic() - t0

    assert took < BOUND_S, f"provisioning took {took:.0f}s:\n" + "\n".join(lines)
    go = home / "build" / "toolchains" / GO_TOOLCHAIN / "bin" / "go"
    assert go.is_file(), lines
    assert any("found no Go on PATH" in line for line in lines), lines
    assert any("verified h1:" in line for line in lines), lines
    version = subprocess.run([str(server.binary), "-version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    assert version.startswith("ferretdb v1.24."), version
    built_with = subprocess.run([str(go), "version", str(server.binary)], capture_output=True,
                                text=True, timeout=30, check=True,
                                env={**os.environ, "GOTOOLCHAIN": "local"}).stdout
    assert built_with.strip().endswith(GO_TOOLCHAIN), built_with

    # A second provision of the same folder is a no-op (stamp), not a rebuild.
    lines.clear()
    t1 = time.monotonic()
    server.provision()
    assert time.monotonic() - t1 < 5 and lines == []
