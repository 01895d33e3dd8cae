"""Every CLI run imports every command; a warning raised on that import lands on the stderr
of commands whose stderr is meant to be one precise line (`verify`, `stack`)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_raises_no_warning() -> None:
    done = subprocess.run([sys.executable, "-W", "error", "-c", "import polystream.cli"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
