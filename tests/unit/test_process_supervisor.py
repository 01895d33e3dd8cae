"""`worker all` as a parent of one process per sink (`runtime.process_supervisor`), with
small Python children standing in for the sinks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from polystream.runtime.process_supervisor import ChildSpec, ProcessSupervisor, worker_argv
from polystream.runtime.supervisor import ExitCode

#: Runs until SIGTERM, then exits 0; writes its pid first so the test can see it.
POLITE = """
import signal, sys, time, pathlib
pathlib.Path(sys.argv[1]).write_text("up")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""
#: Ignores SIGTERM: only SIGKILL ends it.
STUBBORN = """
import signal, sys, time, pathlib
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("up")
while True:
    time.sleep(0.05)
"""


def child(name: str, code: str, tmp: Path) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", textwrap.dedent(code), str(tmp / name)])


def exits(code: int, delay: float = 0.3) -> str:
    return f"import sys, time\ntime.sleep({delay})\nsys.exit({code})\n"


def wait_up(tmp: Path, *names: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all((tmp / n).exists() for n in names):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_child_stops_the_others_and_the_exit_code_says_so(tmp_path: Path) -> None:
    sup = ProcessSupervisor([child("a", POLITE, tmp_path), child("b", exits(1), tmp_path)],
                            shutdown_timeout_s=5, poll_s=0.05)
    started = time.monotonic()
    assert sup.run() is ExitCode.FAILED
    assert time.monotonic() - started < 5
    assert not alive(sup.pids["a"]), "the healthy child must have been stopped and reaped"


def test_a_child_with_bad_settings_makes_the_parent_say_configuration(tmp_path: Path) -> None:
    sup = ProcessSupervisor([child("a", POLITE, tmp_path), child("b", exits(3), tmp_path)],
                            shutdown_timeout_s=5, poll_s=0.05)
    assert sup.run() is ExitCode.CONFIGURATION


def test_a_stop_reaches_every_child_and_ends_cleanly(tmp_path: Path) -> None:
    sup = ProcessSupervisor([child("a", POLITE, tmp_path), child("b", POLITE, tmp_path)],
                            shutdown_timeout_s=5, poll_s=0.05)
    result: list[ExitCode] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()))
    runner.start()
    wait_up(tmp_path, "a", "b")
    sup.stop.set()
    runner.join(10)
    assert result == [ExitCode.STOPPED]
    assert not any(alive(pid) for pid in sup.pids.values())


def test_a_child_that_does_not_stop_is_killed_in_bounded_time(tmp_path: Path) -> None:
    sup = ProcessSupervisor([child("a", POLITE, tmp_path), child("b", STUBBORN, tmp_path)],
                            shutdown_timeout_s=0.3, kill_grace_s=0.2, poll_s=0.05)
    result: list[ExitCode] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()))
    runner.start()
    wait_up(tmp_path, "a", "b")
    started = time.monotonic()
    sup.stop.set()
    runner.join(10)
    assert result == [ExitCode.FORCED]
    assert time.monotonic() - started < 3
    assert not alive(sup.pids["b"])


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """A parent killed outright leaves no sink running unsupervised (Linux)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from polystream.runtime.process_supervisor import ChildSpec, ProcessSupervisor
        sup = ProcessSupervisor([ChildSpec("a", [sys.executable, "-c", {POLITE!r},
                                                 {str(tmp_path / "a")!r}])])
        sup.start()
        print(sup.pids["a"], flush=True)
        import time
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    wait_up(tmp_path, "a")
    parent.send_signal(signal.SIGKILL)
    parent.wait(5)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_children_are_this_interpreter_running_one_supervised_sink() -> None:
    argv = worker_argv("redis", ["--batch-size", "500"])
    assert argv[:3] == [sys.executable, "-m", "polystream"]
    assert argv[3:] == ["worker", "redis", "--supervised", "--batch-size", "500"]


def test_worker_all_passes_its_options_to_every_child() -> None:
    from polystream.cli.worker import _child_options

    first = _child_options(1000, 50, 2000, 9100, 20.0, 0)
    third = _child_options(1000, 50, 2000, 9100, 20.0, 2)
    assert first == ["--batch-size", "1000", "--linger-ms", "50", "--fold-ms", "2000",
                     "--metrics-port", "9100", "--shutdown-timeout", "20.0"]
    # Each child its own /metrics port; 0 (off) stays off for all.
    assert third[third.index("--metrics-port") + 1] == "9102"
    off = _child_options(1000, 50, 2000, 0, 20.0, 3)
    assert off[off.index("--metrics-port") + 1] == "0"
