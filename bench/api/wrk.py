"""Closed-loop maximum throughput with ``wrk`` (Debian's package; installed when missing).

A generated Lua script cycles through the requests; ``done`` prints the summary and the
latency percentiles as one JSON line. Accepted = completed responses minus those with a status
of 400 or more (wrk's ``errors.status``).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.api.requests import Call

CONNECTIONS: Final = 32
THREADS: Final = 2

_LUA_HEAD: Final = """
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local r = calls[(counter % #calls) + 1]
  local body = r[3]
  if r[4] then
    body = string.gsub(body, "{n}", run .. "t" .. tid .. "n" .. counter)
  end
  local headers = nil
  if r[5] then
    headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. r[5]}
  end
  return wrk.format(r[1], r[2], headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class ClosedLoop:
    endpoint: str
    seconds: float = 0.0
    requests: int = 0
    accepted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    api_cpu_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "rate": self.rate}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    done = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True,
                          text=True, check=False, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError(f"wrk is missing and `apt-get install wrk` failed: "
                           f"{done.stderr.strip()[-300:]}")
    return found


def _lua_string(text: str) -> str:
    return f"[==[{text}]==]"


def script(calls: list[Call], run: str) -> str:
    rows = []
    for call in calls:
        body = _lua_string(call.body) if call.body is not None else "nil"
        token = _lua_string(call.token) if call.token is not None else "nil"
        rows.append(f'  {{"{call.method}", {_lua_string(call.path)}, {body}, '
                    f'{"true" if call.numbered else "false"}, {token}}},')
    return f'run = "{run}"\ncalls = {{\n' + "\n".join(rows) + "\n}\n" + _LUA_HEAD


def run_wrk(endpoint: str, calls: list[Call], base_url: str, seconds: float, run: str,
            connections: int = CONNECTIONS) -> ClosedLoop:
    result = ClosedLoop(endpoint)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = Path(tmp) / "calls.lua"
        path.write_text(script(calls, run), encoding="utf-8")
        # wrk takes whole seconds only (a fraction prints its usage and exits 1).
        command = [ensure_wrk(), f"-t{THREADS}", f"-c{connections}",
                   f"-d{max(1, math.ceil(seconds))}s",
                   "--timeout", "10s", "-s", str(path), base_url]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        text = (done.stderr or done.stdout).strip()
        result.problems.append(f"wrk exited {done.returncode}: {text[-300:]}")
        return result
    data = json.loads(line.removeprefix("WRKJSON "))
    result.seconds = data["duration_us"] / 1e6
    result.requests = data["requests"]
    result.errors = {k: data[k] for k in ("status_errors", "connect", "read", "write", "timeout")}
    result.accepted = result.requests - data["status_errors"]
    result.p50_ms, result.p90_ms = data["p50_us"] / 1000, data["p90_us"] / 1000
    result.p99_ms, result.max_ms = data["p99_us"] / 1000, data["max_us"] / 1000
    if data["status_errors"] or data["connect"] or data["timeout"]:
        result.problems.append(f"{endpoint}: errors {result.errors}")
    return result
