"""A server process the stack started from this process is stopped *and* reaped.

A zombie keeps its pid: PostgreSQL's lock check (kill(pid, 0)) took a stopped-but-unreaped
postmaster for a live one and refused to start again on the same data folder.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from polystream.stack.process import ManagedProcess


def _state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return raw[raw.rindex(")") + 2:].split()[0]


def _sleeper(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs" / "sleeper.log")


def test_a_stopped_child_leaves_no_zombie(tmp_path: Path) -> None:
    process = _sleeper(tmp_path)
    rec = process.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    assert _state(rec.pid) not in (None, "Z")
    assert process.stop(5.0)
    assert _state(rec.pid) is None, "the stopped process is still in the process table"
    assert not process.pid_file.exists()


def test_the_stop_signal_is_the_servers(tmp_path: Path) -> None:
    # A child that exits cleanly on SIGINT only: TERM is ignored, so a stop with TERM would
    # have to wait for the KILL after the timeout.
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "def done(*_):\n"
            "    print('clean exit', flush=True)\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGINT, done)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    process = _sleeper(tmp_path)
    rec = process.spawn([sys.executable, "-c", code])
    log = process.log_file
    for _ in range(100):
        if "ready" in log.read_text():
            break
        time.sleep(0.05)
    assert process.stop(30.0, signal.SIGINT)
    assert _state(rec.pid) is None
    assert "clean exit" in log.read_text(), "stopped by KILL, not by the server's signal"
