"""A small open-loop HTTP/1.1 load generator: request *i* is due at ``t0 + i / rate`` whatever
happened before, and its latency is measured from that scheduled time (a request that waits
for a free connection, or behind a slow one, is late by that much: no coordinated omission).

Kept cheap on purpose (the API under test shares the machine's two cores): requests are
pre-encoded bytes, keep-alive connections are opened before the clock, a response is read as
its header block plus ``Content-Length`` bytes, nothing else is parsed. Its own CPU time is
reported with the result.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Final

from bench.api.requests import Call
from bench.pipeline.stream import percentiles

POOL: Final = 64
POINTS: Final = (50.0, 90.0, 99.0, 99.9)


@dataclass
class OpenLoop:
    endpoint: str
    rate: float
    seconds: float
    scheduled: int = 0
    completed: int = 0
    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failed: int = 0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    p999_ms: float = math.nan
    max_ms: float = math.nan
    #: How late the generator itself sent, at worst (its own scheduling delay).
    max_send_delay_ms: float = 0.0
    generator_cpu_s: float = 0.0
    api_cpu_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["statuses"] = {str(k): v for k, v in self.statuses.items()}
        return out


def encode(call: Call, host: str, number: int | None, run: str) -> bytes:
    body = (call.body or "")
    if call.numbered and number is not None:
        body = body.replace("{n}", f"{run}o{number}")
    data = body.encode()
    head = [f"{call.method} {call.path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if call.token is not None:
        head.append(f"Authorization: Bearer {call.token}")
    if call.body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status


async def _run(host: str, port: int, calls: list[Call], result: OpenLoop, run: str,
               grace_s: float) -> list[float]:
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(POOL):
        reader, writer = await asyncio.open_connection(host, port)
        pool.put_nowait(_Conn(reader, writer))
    n = result.scheduled
    latencies = [math.inf] * n
    numbers = count()
    host_header = f"{host}:{port}"
    prebuilt = [encode(c, host_header, None, run) for c in calls]

    async def one(i: int, due: float) -> None:
        call = calls[i % len(calls)]
        request = (encode(call, host_header, next(numbers), run) if call.numbered
                   else prebuilt[i % len(calls)])
        conn = await pool.get()
        try:
            status = await conn.call(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.failed += 1
            reader, writer = await asyncio.open_connection(host, port)
            conn = _Conn(reader, writer)
            return
        finally:
            pool.put_nowait(conn)
        latencies[i] = loop.time() - due
        result.completed += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            result.accepted += 1

    t0 = loop.time() + 0.05
    tasks = []
    worst = 0.0
    for i in range(n):
        due = t0 + i / result.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            worst = max(worst, -delay)
        tasks.append(asyncio.create_task(one(i, due)))
    result.max_send_delay_ms = worst * 1000
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    while not pool.empty():
        pool.get_nowait().writer.close()
    return latencies


def run_open_loop(endpoint: str, calls: list[Call], host: str, port: int, rate: float,
                  seconds: float, run: str, grace_s: float = 10.0) -> OpenLoop:
    result = OpenLoop(endpoint, rate, seconds, scheduled=math.ceil(rate * seconds))
    cpu0 = time.process_time()
    try:
        latencies = asyncio.run(_run(host, port, calls, result, run, grace_s))
    except OSError as exc:
        result.problems.append(f"{endpoint}: {exc}")
        return result
    result.generator_cpu_s = time.process_time() - cpu0
    values = [v * 1000 for v in latencies]
    result.p50_ms, result.p90_ms, result.p99_ms, result.p999_ms = percentiles(values, POINTS)
    result.max_ms = max(values) if values else math.nan
    missing = result.scheduled - result.completed - result.failed
    if missing:
        # Above the API's capacity the queue outgrows the grace period: a finding (counted as
        # slower than every answer in the percentiles), not a failure of the run.
        result.notes.append(f"{endpoint}: {missing} of {result.scheduled} requests not "
                            f"answered within {grace_s:g}s of the schedule's end")
    if result.failed:
        result.problems.append(f"{endpoint}: {result.failed} requests failed (connection "
                               "closed or unreadable answer)")
    refused = result.completed - result.accepted
    if refused:
        result.problems.append(f"{endpoint}: {refused} answers not 2xx ({result.statuses})")
    return result
