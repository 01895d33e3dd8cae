"""Running several consumers in one process: start-up that outlasts a slow or frozen world,
shutdown that ends in bounded time whatever a client library does.

* **Start-up** (migrations, index templates, topic checks, first connections) is retried with
  backoff until it works or the process is asked to stop: a server that is still starting, or
  a connection that timed out because the whole process was frozen, is not a reason to die.
  Only a `ConfigurationError` stops the process, with one line saying what to fix.
* **Failure**: a consumer that dies of anything else stops the whole process (exit code 1), so a
  supervisor (systemd, Kubernetes) restarts it; half a worker is worse than none.
* **Shutdown** is bounded: once stopping starts, every consumer has ``shutdown_timeout_s`` to
  close its clients. After that the process exits anyway (exit code 4). The process exits
  through ``os._exit`` once its clients are closed: librdkafka's handles otherwise get destroyed
  during interpreter finalisation, which has been seen to block forever (a consumer freed
  there joins librdkafka's threads while holding the interpreter lock).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from polystream.observe import tracing
from polystream.runtime.retry import Backoff, ConfigurationError, retry_until_stopped

log = logging.getLogger("polystream.worker")


class ExitCode(IntEnum):
    STOPPED = 0  #: asked to stop, and everything closed in time
    FAILED = 1  #: a consumer failed; the others were stopped
    CONFIGURATION = 3  #: the settings cannot work; fix them and start again
    FORCED = 4  #: stopping took longer than the shutdown timeout


class Runnable(Protocol):
    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class Role:
    """One consumer of the process: how to build it (may take long and fail transiently)."""

    name: str
    build: Callable[[], Runnable]


@dataclass
class Supervisor:
    roles: Sequence[Role]
    #: Errors that retrying start-up can fix (servers unreachable or still starting).
    transient: tuple[type[BaseException], ...]
    shutdown_timeout_s: float = 20.0
    stop: threading.Event = field(default_factory=threading.Event)
    _failures: list[tuple[str, BaseException]] = field(default_factory=list)
    _config_error: ConfigurationError | None = None

    def install_signal_handlers(self, *, escalate: bool = True) -> None:
        """First SIGTERM/SIGINT: stop gracefully. A second one: exit now, unless
        ``escalate`` is False (a supervised child: the same stop can reach it twice, from its
        parent and from its process group, and the parent bounds the shutdown)."""
        def handler(signum: int, _frame: object) -> None:
            if self.stop.is_set():
                if not escalate:
                    return
                log.warning("second %s: exiting now", signal.Signals(signum).name)
                exit_process(ExitCode.FORCED)
            log.info("%s: stopping", signal.Signals(signum).name)
            self.stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, handler)

    def _run_role(self, role: Role) -> None:
        try:
            runner = retry_until_stopped(role.build, self.stop, what=f"{role.name}: start-up",
                                         transient=self.transient, log=log,
                                         backoff=Backoff(0.5, 10.0))
            if runner is None:
                return
            log.info("%s: running", role.name)
            runner.run(self.stop)
        except ConfigurationError as exc:
            self._config_error = exc
            log.error("%s: %s", role.name, exc)
            self.stop.set()
        except BaseException as exc:  # a dead consumer must stop the process, loudly
            self._failures.append((role.name, exc))
            log.exception("%s failed", role.name)
            self.stop.set()

    def run(self) -> ExitCode:
        """Run every role until stopped or one fails; the exit code says which."""
        threads = [threading.Thread(target=self._run_role, args=(role,), name=role.name,
                                    daemon=True) for role in self.roles]
        for t in threads:
            t.start()
        while not self.stop.wait(0.5):
            if not any(t.is_alive() for t in threads):
                break
        self.stop.set()
        deadline = time.monotonic() + self.shutdown_timeout_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.error("%s did not stop within %.0fs; exiting anyway", ", ".join(stuck),
                      self.shutdown_timeout_s)
            return ExitCode.FORCED
        if self._config_error is not None:
            return ExitCode.CONFIGURATION
        if self._failures:
            return ExitCode.FAILED
        return ExitCode.STOPPED


def exit_process(code: int) -> None:
    """Leave without interpreter finalisation (see the module docstring)."""
    tracing.shutdown()  # the last batches' spans: os._exit skips the exporter's own exit hook
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not keep us here
            stream.flush()
    os._exit(code)
