"""`polystream stack up | down | status | logs`: the five servers as one unit.

`up` provisions what is missing (in parallel: apt, Maven, Go), then starts each server once its
dependencies answer, and waits until every one answers a real request. A healthy server is
left alone; one whose process died is started again.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from polystream.settings import Settings
from polystream.stack.base import Health, Server
from polystream.stack.ferretdb import FerretDBServer
from polystream.stack.kafka import KafkaServer
from polystream.stack.opensearch import OpenSearchServer
from polystream.stack.postgres import PostgresServer
from polystream.stack.process import StackError
from polystream.stack.redis import RedisServer

Report = Callable[[str, str], None]
"""Progress callback: (server name, message)."""

SERVER_TYPES: tuple[type[Server], ...] = (
    PostgresServer, RedisServer, KafkaServer, FerretDBServer, OpenSearchServer,
)


@dataclass
class UpResult:
    name: str
    action: str  # "already running" | "started" | "restarted" | "external"
    version: str
    seconds: float


@dataclass
class Stack:
    settings: Settings
    report: Report = field(default=lambda name, msg: None)

    def __post_init__(self) -> None:
        self.home: Path = self.settings.stack.resolved_home()
        servers = [cls(self.settings, self.home) for cls in SERVER_TYPES]
        for server in servers:
            server.progress = functools.partial(self.report, server.name)
        self.servers: dict[str, Server] = {
            s.name: s for s in servers
            if not (s.name == "opensearch" and not self.settings.opensearch.enabled)
        }

    def select(self, names: list[str] | None) -> list[Server]:
        if not names:
            return list(self.servers.values())
        unknown = [n for n in names if n not in self.servers]
        if unknown:
            raise StackError(f"unknown server(s): {', '.join(unknown)}; "
                             f"known: {', '.join(self.servers)}")
        return [self.servers[n] for n in names]

    # ------------------------------------------------------------------------------ up
    def up(self, names: list[str] | None = None) -> list[UpResult]:
        wanted = self.select(names)
        # Dependencies come along: FerretDB cannot run without its PostgreSQL.
        for s in list(wanted):
            for dep in s.depends_on:
                if self.servers[dep] not in wanted:
                    wanted.insert(0, self.servers[dep])
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self._provision([s for s in wanted if s.managed])
        done = {s.name: threading.Event() for s in wanted}
        failed: dict[str, str] = {}
        results: dict[str, UpResult] = {}

        def bring_up(server: Server) -> None:
            try:
                for dep in server.depends_on:
                    done[dep].wait()
                    if dep in failed:
                        raise StackError(f"{server.name}: not started, {dep} failed")
                results[server.name] = self._ensure(server)
            except Exception as exc:
                failed[server.name] = str(exc)
                self.report(server.name, f"FAILED: {exc}")
            finally:
                done[server.name].set()

        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            list(pool.map(bring_up, wanted))
        if failed:
            raise StackError("; ".join(failed[n] for n in failed))
        return [results[s.name] for s in wanted]

    def _provision(self, servers: list[Server]) -> None:
        def one(server: Server) -> None:
            t0 = time.monotonic()
            self.report(server.name, "checking installation")
            server.provision()
            took = time.monotonic() - t0
            if took > 1:
                self.report(server.name, f"provisioned in {took:.1f}s")

        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            for server, fut in [(s, pool.submit(one, s)) for s in servers]:
                exc = fut.exception()
                if exc is not None:
                    errors.append(f"{server.name}: {exc}" if server.name not in str(exc)
                                  else str(exc))
        if errors:
            raise StackError("; ".join(errors))

    def _ensure(self, server: Server) -> UpResult:
        t0 = time.monotonic()
        timeout = self.settings.stack.start_timeout_s
        if not server.managed:
            version = self._wait_healthy(server, None, timeout=min(timeout, 15))
            self.report(server.name, f"external server at {server.address}: {version}")
            return UpResult(server.name, "external", version, time.monotonic() - t0)
        running = server.process.running()
        if running is not None:
            version = self._wait_healthy(server, running.pid, timeout=timeout, after_start=True)
            self.report(server.name, f"already running (pid {running.pid}): {version}")
            return UpResult(server.name, "already running", version, time.monotonic() - t0)
        action = "restarted" if server.process.record() is not None else "started"
        server.prepare()
        self.report(server.name, f"starting on {server.address}")
        proc = server.start()
        version = self._wait_healthy(server, proc.pid, timeout=timeout, after_start=True)
        took = time.monotonic() - t0
        self.report(server.name, f"{action} in {took:.1f}s (pid {proc.pid}): {version}")
        return UpResult(server.name, action, version, took)

    def _wait_healthy(self, server: Server, pid: int | None, *, timeout: float,
                      after_start: bool = False) -> str:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        bootstrapped = False
        while True:
            if pid is not None and server.process.running() is None:
                raise StackError(
                    f"{server.name}: process exited during start-up ({last}); "
                    f"log {server.log_file}:\n{server.log_tail()}")
            try:
                if after_start and not bootstrapped:
                    server.ready()
                    server.after_start()
                    bootstrapped = True
                return server.probe()
            except Exception as exc:
                last = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
            if time.monotonic() > deadline:
                where = f"; log {server.log_file}" if server.managed else ""
                raise StackError(f"{server.name}: not healthy after {timeout:.0f}s at "
                                 f"{server.address}: {last}{where}")
            time.sleep(0.25)

    # ---------------------------------------------------------------------------- down
    def down(self, names: list[str] | None = None) -> list[str]:
        stopped: list[str] = []
        # Dependents first: FerretDB before the PostgreSQL it writes to.
        for server in reversed(self.select(names)):
            if not server.managed:
                continue
            self.report(server.name, "stopping")
            if server.process.stop(self.settings.stack.stop_timeout_s, server.stop_signal):
                stopped.append(server.name)
                self.report(server.name, "stopped")
            else:
                self.report(server.name, "was not running")
        return stopped

    # -------------------------------------------------------------------------- status
    def status(self) -> list[Health]:
        servers = list(self.servers.values())
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            return list(pool.map(lambda s: s.health(), servers))

    def log_file(self, name: str) -> Path:
        return self.select([name])[0].log_file
