"""Start-up that outlasts transient errors, and a shutdown that ends in bounded time."""

from __future__ import annotations

import threading
import time

from polystream.runtime.retry import Backoff, ConfigurationError
from polystream.runtime.supervisor import ExitCode, Role, Runnable, Supervisor
from polystream.store_errors import TransientStoreError


class Runner:
    def __init__(self, *, fail: bool = False, ignore_stop: bool = False) -> None:
        self.fail = fail
        self.ignore_stop = ignore_stop
        self.ran = threading.Event()
        self.stopped = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.ran.set()
        if self.fail:
            raise RuntimeError("boom")
        if self.ignore_stop:
            time.sleep(3600)
        stop.wait()
        self.stopped.set()


def _supervisor(*roles: Role, timeout: float = 5.0) -> Supervisor:
    return Supervisor(list(roles), transient=(TransientStoreError,), shutdown_timeout_s=timeout)


def test_transient_start_up_errors_are_retried_until_it_runs() -> None:
    attempts: list[float] = []
    runner = Runner()

    def build() -> Runnable:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise TransientStoreError("connection timeout expired")
        return runner

    sup = _supervisor(Role("sink", build))

    def stop_once_running() -> None:
        runner.ran.wait(10)
        sup.stop.set()

    threading.Thread(target=stop_once_running, daemon=True).start()
    assert sup.run() is ExitCode.STOPPED
    assert len(attempts) == 3 and runner.stopped.is_set()


def test_a_configuration_error_stops_the_process_with_its_own_code() -> None:
    other = Runner()

    def build() -> Runnable:
        raise ConfigurationError("PostgreSQL refused the connection: password authentication")

    started = time.monotonic()
    assert _supervisor(Role("sink", build), Role("other", lambda: other)).run() is (
        ExitCode.CONFIGURATION)
    assert time.monotonic() - started < 5
    # The other consumer was stopped, or never started.
    assert other.stopped.is_set() or not other.ran.is_set()


def test_a_failing_consumer_stops_the_others_and_the_exit_code_says_so() -> None:
    ok = Runner()
    assert _supervisor(Role("bad", lambda: Runner(fail=True)), Role("ok", lambda: ok)).run() is (
        ExitCode.FAILED)
    assert ok.stopped.is_set() or not ok.ran.is_set()


def test_a_consumer_that_does_not_stop_does_not_keep_the_process() -> None:
    stuck = Runner(ignore_stop=True)
    sup = _supervisor(Role("stuck", lambda: stuck), timeout=1.0)
    threading.Timer(0.5, sup.stop.set).start()
    started = time.monotonic()
    assert sup.run() is ExitCode.FORCED
    assert time.monotonic() - started < 4


def test_backoff_grows_to_its_cap_and_a_stop_cuts_the_wait_short() -> None:
    b = Backoff(0.01, 0.04)
    delays = []
    stop = threading.Event()
    for _ in range(4):
        delays.append(b.delay)
        assert b.wait(stop) is False
    assert delays == [0.01, 0.02, 0.04, 0.04]
    stop.set()
    slow = Backoff(30, 60)
    started = time.monotonic()
    assert slow.wait(stop) is True
    assert time.monotonic() - started < 1
