"""`polystream demo --stack` on the real servers: separate processes per role, a dashboard
that answers with live numbers, and a summary whose figures agree with direct queries."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.stack

TOKEN = "demo-stack-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_on_the_stack_agrees_with_the_stores() -> None:
    port = free_port()
    env = {**os.environ, "POLYSTREAM_API__OPERATOR_TOKEN": TOKEN, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "polystream", "demo", "--stack",
         "--duration", "15", "--rate", "100", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    frame = None
    deadline = time.monotonic() + 180
    while frame is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/dashboard/stream?frames=1",
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            if r.status_code == 200:
                frame = json.loads(r.text.strip().split("\n\n")[-1].split("data: ", 1)[1])
        except httpx.HTTPError:
            time.sleep(0.5)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert frame is not None, out
    assert {s["name"]: s["healthy"] for s in frame["snapshot"]["stores"]} == {
        "postgres": True, "mongo": True, "redis": True, "audit": True}
    published = re.search(r"([\d,]+) events published in this run", out)
    assert published and int(published.group(1).replace(",", "")) >= 1000, out
    rows = [line for line in out.splitlines() if re.match(r"^│ (postgres|mongo|redis|audit) ",
                                                           line)]
    compared = [r for r in rows if r.rstrip().endswith(("= │", "≠ │"))]
    assert len(compared) == 13, out
    assert all(r.rstrip().endswith("= │") for r in compared), out
    lags = [r for r in rows if len(r.split("│")) == 6]
    assert lags and all(r.split("│")[4].strip() == "0" for r in lags), out
