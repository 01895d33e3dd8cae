"""The processes under test: started as users start them, sampled through ``/proc``.

Peak RSS is the kernel's own high-water mark (``VmHWM``) of each process, plus the largest
RSS of any child seen by the sampler; CPU is ``utime + stime`` of the process and its
children (all threads included), in seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

_TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY_S: Final = 0.25


def polystream_command() -> list[str]:
    """``polystream`` next to the interpreter running the bench (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("polystream")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("polystream")
    if found:
        return [found]
    return [sys.executable, "-m", "polystream"]


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Usage:
    cpu_s: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    threads: int = 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found += [int(c) for c in text.split()]
    return found


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += _children(current)
    return out


def usage(pid: int) -> Usage:
    """CPU, RSS and peak RSS of one process (threads included); zeros once it is gone."""
    result = Usage()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return result
    # Fields after the command name (which may hold spaces) start at state (field 3).
    fields = stat.rsplit(")", 1)[1].split()
    # Its own CPU only: children are sampled as part of the tree (`Worker.sample`), and
    # adding the reaped children's time here would count them twice.
    utime, stime = (int(v) for v in fields[11:13])
    result.cpu_s = (utime + stime) * _TICK_S
    result.threads = int(fields[17])
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            result.rss_mib = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            result.peak_rss_mib = int(line.split()[1]) / 1024
    return result


@dataclass
class Worker:
    """One ``polystream worker ...`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    cpu_at: dict[str, float] = field(default_factory=dict)
    #: The largest peak of any one process of the tree (`worker all` is a parent and one
    #: child per sink; the target is per process).
    peak_rss_mib: float = 0.0
    #: The peak of the whole tree's RSS added up.
    tree_peak_rss_mib: float = 0.0
    processes: int = 0
    last: Usage = field(default_factory=Usage)
    _cpu_of: dict[int, float] = field(default_factory=dict)

    def sample(self) -> Usage:
        total = Usage()
        pids = tree(self.proc.pid)
        for pid in pids:
            one = usage(pid)
            if one.threads:
                self._cpu_of[pid] = one.cpu_s
            total.rss_mib += one.rss_mib
            total.threads += one.threads
            total.peak_rss_mib = max(total.peak_rss_mib, one.peak_rss_mib)
        # A child that exited keeps its last CPU count (its parent's cutime has it only
        # once reaped, and then the child is gone from the tree).
        total.cpu_s = sum(self._cpu_of.values())
        if total.threads:
            self.peak_rss_mib = max(self.peak_rss_mib, total.peak_rss_mib)
            self.tree_peak_rss_mib = max(self.tree_peak_rss_mib, total.rss_mib)
            self.processes = max(self.processes, len(pids))
            self.last = total
        return total

    def mark(self, label: str) -> None:
        """Remember the CPU seconds used so far under ``label`` (e.g. "ready", "drained")."""
        self.cpu_at[label] = self.sample().cpu_s

    def cpu_between(self, start: str, end: str) -> float:
        return self.cpu_at.get(end, 0.0) - self.cpu_at.get(start, 0.0)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_workers(sinks: Sequence[str], env: Mapping[str, str], log_dir: Path,
                  extra: Sequence[str] = ()) -> list[Worker]:
    """One process per entry of ``sinks`` (``all`` = every sink in one process)."""
    workers: list[Worker] = []
    for sink in sinks:
        log_path = log_dir / f"worker-{sink}.log"
        handle: IO[bytes] = log_path.open("wb")
        proc = subprocess.Popen(
            [*polystream_command(), "worker", sink, *extra],
            env=child_env(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        handle.close()
        workers.append(Worker(sink, proc, log_path))
    return workers


def stop_workers(workers: Sequence[Worker], timeout_s: float = 30.0) -> list[str]:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns what had to be killed or died."""
    problems: list[str] = []
    for worker in workers:
        worker.sample()
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        try:
            worker.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(10)
            problems.append(f"worker {worker.name} did not stop within {timeout_s:.0f}s: killed")
    return problems


class Sampler:
    """Samples the workers every :data:`SAMPLE_EVERY_S` so a child's peak is not missed."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            for worker in self.workers:
                worker.sample()
