"""Detached server processes that the stack starts, finds again and stops.

A pid file holds the pid *and* the kernel start time of the process: a pid alone can be reused
by an unrelated process after a crash, and ``down`` must stop exactly what ``up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A server could not be provisioned, started, probed or stopped (message says which)."""


def _proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses; split after its end.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: int
    argv: list[str]

    def alive(self) -> bool:
        return _proc_start_time(self.pid) == self.start_time


class ManagedProcess:
    """One server process, identified by its pid file under the stack's run folder."""

    def __init__(self, name: str, run_dir: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file

    def record(self) -> ProcessRecord | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return ProcessRecord(int(data["pid"]), int(data["start_time"]), list(data["argv"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def running(self) -> ProcessRecord | None:
        rec = self.record()
        return rec if rec is not None and rec.alive() else None

    def spawn(
        self,
        argv: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> ProcessRecord:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"\n=== {stamp} starting: {' '.join(argv)}\n".encode())
            log.flush()
            # Own session: the server outlives this CLI, and `stop` can signal its whole group.
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                user=user,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        start = None
        for _ in range(100):
            start = _proc_start_time(proc.pid)
            if start is not None:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        if start is None:
            raise StackError(
                f"{self.name}: exited at once (code {proc.poll()}); see {self.log_file}"
            )
        rec = ProcessRecord(proc.pid, start, argv)
        self.pid_file.write_text(json.dumps({"pid": rec.pid, "start_time": start, "argv": argv}))
        # The child is detached on purpose; forget the Popen so no ResourceWarning is raised.
        proc.returncode = 0
        return rec

    def stop(self, timeout_s: float, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Stop the process group: ``sig``, then KILL after ``timeout_s``. True if one was
        running."""
        rec = self.running()
        if rec is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal(rec.pid, sig)
        deadline = time.monotonic() + timeout_s
        while rec.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if rec.alive() or bool(group_members(rec.pid)):
            self._signal(rec.pid, signal.SIGKILL)
            for _ in range(50):
                if not rec.alive() and not bool(group_members(rec.pid)):
                    break
                time.sleep(0.1)
        _reap(rec.pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when this process started it (a test or a drill that
    restarted a server). Unreaped, it stays a zombie, and a zombie still answers kill(pid, 0):
    PostgreSQL then takes the zombie for a live postmaster and refuses to start on its data
    folder ("lock file postmaster.pid already exists")."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid`` (used by tests and `status`)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` in KiB (VmRSS), None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
