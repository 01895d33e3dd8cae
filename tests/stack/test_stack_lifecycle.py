"""`polystream stack` itself: a second, private stack on other ports and another folder.

Runs the real CLI in a subprocess, like a user would: up, status, kill -9 one server, up again
(only that one restarts), down (none of their processes remains).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polystream.stack.process import group_members

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SERVERS = ["postgres", "redis", "kafka", "ferretdb", "opensearch"]


@pytest.fixture
def private_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSTREAM_")}
    env.update({
        "POLYSTREAM_STACK__HOME": str(tmp_path / "stack"),
        "POLYSTREAM_POSTGRES__PORT": "15432",
        "POLYSTREAM_REDIS__PORT": "16379",
        "POLYSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "POLYSTREAM_KAFKA__CONTROLLER_PORT": "19093",
        "POLYSTREAM_KAFKA__HEAP": "256m",
        "POLYSTREAM_MONGO__URL": "mongodb://127.0.0.1:17017/",
        "POLYSTREAM_OPENSEARCH__URL": "http://127.0.0.1:19200",
        "POLYSTREAM_OPENSEARCH__TRANSPORT_PORT": "19300",
        "POLYSTREAM_OPENSEARCH__HEAP": "256m",
    })
    return env


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "polystream", "stack", *args], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"stack {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def _pids(home: Path) -> dict[str, int]:
    return {p.stem: json.loads(p.read_text())["pid"] for p in (home / "run").glob("*.pid")}


def test_up_status_restart_one_and_down(private_env: dict[str, str]) -> None:
    home = Path(private_env["POLYSTREAM_STACK__HOME"])
    try:
        _cli(private_env, "up")
        status = _cli(private_env, "status")
        for name in SERVERS:
            line = next(line for line in status.stdout.splitlines() if f" {name} " in line)
            assert "healthy" in line, line
        first = _pids(home)
        assert sorted(first) == sorted(SERVERS)

        os.kill(first["redis"], signal.SIGKILL)
        time.sleep(0.5)
        down_status = _cli(private_env, "status", check=False)
        assert down_status.returncode == 1

        again = _cli(private_env, "up")
        assert "redis" in again.stderr and "restarted" in again.stderr
        second = _pids(home)
        assert second["redis"] != first["redis"]
        for name in SERVERS:
            if name != "redis":
                assert second[name] == first[name], f"{name} was restarted"

        _cli(private_env, "down")
        assert not list((home / "run").glob("*.pid"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(group_members(p) for p in second.values()):
            time.sleep(0.2)
        leftovers = {n: group_members(p) for n, p in second.items() if group_members(p)}
        assert leftovers == {}
    finally:
        _cli(private_env, "down", check=False)
