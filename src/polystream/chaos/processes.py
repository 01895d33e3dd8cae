"""A `polystream` command in its own process, as an operator would run it, and the signals a
drill sends it: freeze (SIGSTOP), thaw (SIGCONT), throttle (a SIGSTOP/SIGCONT duty cycle, a
CPU-starved host), terminate (SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path


class PolystreamProcess:
    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], log: Path) -> None:
        self.args = list(args)
        self.log = log
        self._log_file = log.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "polystream", *self.args],
                                     env=dict(env), stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._throttle_stop = threading.Event()
        self._throttle: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def throttle(self, running_share: float, period_s: float = 1.0) -> None:
        """Let it run only ``running_share`` of each period until `unthrottle`."""
        def duty() -> None:
            while not self._throttle_stop.is_set() and self.alive():
                self.thaw()
                time.sleep(period_s * running_share)
                if self._throttle_stop.is_set():
                    break
                self.freeze()
                time.sleep(period_s * (1 - running_share))
            self.thaw()

        self._throttle_stop.clear()
        self._throttle = threading.Thread(target=duty, daemon=True)
        self._throttle.start()

    def unthrottle(self) -> None:
        self._throttle_stop.set()
        if self._throttle is not None:
            self._throttle.join(5)
        self.thaw()

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if it is still running after ``timeout_s``."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.unthrottle()
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log_file.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(procs: Iterable[PolystreamProcess], log: Callable[[str], None], who: str,
             grace_s: float = 30) -> None:
    """SIGTERM every process first, so that they shut down side by side, then wait for each;
    one still running after ``grace_s`` is killed (and said so)."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        if p.wait(grace_s) is None:
            log(f"{who}: {p.args} did not stop on SIGTERM within {grace_s:g}s; killed")
        p.kill()
