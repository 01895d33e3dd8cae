"""Several consumers, one OS process each: `polystream worker all` as a parent that starts one
``polystream worker <sink>`` child per sink and watches them.

Why processes: every sink and the auditor spend most of their time in Python (decoding,
building documents and commands); in one process they share one interpreter lock, so two
cores do the work of one. As children they run in parallel and each has its own memory.

What the parent guarantees, like the in-process `Supervisor`:

* **Failure**: a child that exits by itself (crash, configuration error) stops the others;
  the parent exits 3 when it was a configuration error, 1 otherwise. Half a worker is worse
  than none: the service manager restarts the whole set.
* **Signals**: the first SIGTERM/SIGINT is forwarded to every child (as SIGTERM); children are
  started with ``--supervised`` so that a signal reaching them twice (the parent's and, from a
  terminal or ``kill -- -PGID``, the group's) counts once. A second signal to the parent kills
  the children and exits 4 at once.
* **Bounded shutdown**: the children have ``shutdown_timeout_s`` to stop (their own bound),
  plus a short grace; any child still alive after that is killed and the parent exits 4.
* **Orphans**: on Linux each child asks the kernel for SIGTERM when its parent dies, so killing
  the parent alone (SIGKILL) does not leave the sinks running unsupervised.

The children share the parent's process group, so freezing the group (SIGSTOP, as the chaos
drills do) freezes all of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from polystream.runtime.supervisor import ExitCode

log = logging.getLogger("polystream.worker")

_PR_SET_PDEATHSIG = 1
#: What the parent adds to the children's own shutdown bound before it kills them.
KILL_GRACE_S = 5.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel for SIGTERM when the parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]


@dataclass
class ProcessSupervisor:
    children: Sequence[ChildSpec]
    shutdown_timeout_s: float = 20.0
    #: Added to ``shutdown_timeout_s`` before a child that has not stopped is killed.
    kill_grace_s: float = KILL_GRACE_S
    poll_s: float = 0.2
    stop: threading.Event = field(default_factory=threading.Event)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _forced: bool = False
    #: Where children come from; tests substitute it.
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            if self.stop.is_set():
                log.warning("second %s: killing the workers", signal.Signals(signum).name)
                self._forced = True
                self._signal_all(signal.SIGKILL)
                return
            log.info("%s: stopping the workers", signal.Signals(signum).name)
            self.stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, handler)

    def _signal_all(self, sig: signal.Signals) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def start(self) -> None:
        for child in self.children:
            self._procs[child.name] = self.popen(list(child.argv), stdin=subprocess.DEVNULL,
                                                 preexec_fn=_die_with_parent)
            log.info("%s: started as process %d", child.name, self._procs[child.name].pid)

    def run(self) -> ExitCode:
        """Start the children, wait until asked to stop or one exits, stop the rest."""
        self.start()
        failed: tuple[str, int] | None = None
        while not self.stop.wait(self.poll_s):
            ended = [(name, p.returncode) for name, p in self._procs.items()
                     if p.poll() is not None]
            if ended:
                failed = ended[0]
                log.error("%s exited with code %d; stopping the others", *failed)
                break
        self.stop.set()
        self._signal_all(signal.SIGTERM)
        bound = self.shutdown_timeout_s + self.kill_grace_s
        deadline = time.monotonic() + bound
        codes: dict[str, int] = {}
        for name, proc in self._procs.items():
            try:
                codes[name] = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0fs: killed", name, bound)
                proc.kill()
                proc.wait()
                codes[name] = ExitCode.FORCED
                self._forced = True
        return self._exit_code(failed, codes)

    def _exit_code(self, failed: tuple[str, int] | None, codes: dict[str, int]) -> ExitCode:
        if failed is not None:
            return (ExitCode.CONFIGURATION if failed[1] == ExitCode.CONFIGURATION
                    else ExitCode.FAILED)
        if self._forced or any(c == ExitCode.FORCED for c in codes.values()):
            return ExitCode.FORCED
        if any(c == ExitCode.CONFIGURATION for c in codes.values()):
            return ExitCode.CONFIGURATION
        if any(c != ExitCode.STOPPED for c in codes.values()):
            return ExitCode.FAILED
        return ExitCode.STOPPED

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}


def worker_argv(sink: str, options: Sequence[str]) -> list[str]:
    """The command line of one supervised child (this interpreter, this package)."""
    return [sys.executable, "-m", "polystream", "worker", sink, "--supervised", *options]

