"""`polystream demo --stack`: the demo on the real servers, one process per role.

Brings the stack up (a no-op when it runs), ensures the topics, then starts the API (with the
dashboard), one worker per sink, the auditor and the simulator, each a process of its own in
its own process group, so the dashboard shows real lag and real stores. On exit (Ctrl-C,
``--duration`` or ``--events``) it stops the simulator, waits for the groups to catch up,
stops the rest and prints what the run did next to what a direct query of each store finds.
"""

from __future__ import annotations

import faulthandler
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from polystream.audit.documents import DocKind
from polystream.audit.ports import AuditQuery
from polystream.bus.admin import delete_groups, start_group_at_end
from polystream.bus.topology import Topic, topics_for
from polystream.cli.demo import dashboard_link, with_operator_token
from polystream.domain.events import Sink
from polystream.observe.model import Snapshot
from polystream.observe.stack import ACCOUNT_TABLES, CATALOG_COLLECTIONS, stack_observatory
from polystream.settings import Settings, load_settings
from polystream.simulate import SimConfig

console = Console()
_EXE = [sys.executable, "-m", "polystream"]
_EVENT_TOPICS = [t.value for t in Topic if t not in (Topic.DEADLETTER, Topic.RECEIPTS)]


@dataclass
class Roles:
    """The demo's processes, stopped in reverse order of start (the API and the sinks after
    the simulator, so nothing is left unconsumed)."""

    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen([*_EXE, *args], stdout=log, stderr=log,
                                            env=self.env, start_new_session=True)

    def stop(self, name: str, timeout_s: float = 30.0) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items()
                if p.poll() is not None and name != "simulator"]


def _must(*args: str) -> None:
    if subprocess.run([*_EXE, *args], check=False).returncode != 0:
        console.print(f"[red]`polystream {' '.join(args)}` failed[/]")
        raise typer.Exit(1)


def run_stack_demo(sim: SimConfig, *, rate: float, duration_s: float | None,
                   events: int | None, port: int | None) -> None:
    # librdkafka and the drivers are C code: a crash must at least say where it happened.
    faulthandler.enable()
    _must("stack", "up")
    _must("topics", "ensure")
    base, token = with_operator_token(load_settings())
    # Consumer groups of this run only, started at the end of every topic: the topics may
    # hold a backlog from other runs or tests, and the summary must compare this run's events
    # with the stores once they are drained, not wait behind someone else's traffic.
    run_prefix = f"demo-{secrets.token_hex(4)}"
    settings = base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"group_prefix": run_prefix})})
    groups = [settings.kafka.consumer_group(sink.value) for sink in Sink]
    for sink in Sink:
        start_group_at_end(settings.kafka, settings.kafka.consumer_group(sink.value),
                           [t.value for t in topics_for(sink)])
    host, port = settings.api.host, port or settings.api.port
    logs = settings.stack.resolved_home() / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "POLYSTREAM_API__OPERATOR_TOKEN": token, "PYTHONUNBUFFERED": "1",
           "POLYSTREAM_KAFKA__GROUP_PREFIX": run_prefix}
    observatory, close = stack_observatory(settings)
    # The summary compares figures read at the same moment: no cached store sizes here.
    observatory.slow_every_s = 0.0
    before = observatory.snapshot()
    roles = Roles(logs, env)
    sim_args = ["simulate", "--rate", f"{rate:g}", "--seed", str(sim.seed), "--users",
                str(sim.users), "--titles", str(sim.titles), "--no-progress"]
    if duration_s is not None:
        sim_args += ["--duration", f"{duration_s:g}"]
    if events is not None:
        sim_args += ["--events", str(events)]
    try:
        roles.start("api", "api", "serve", "--host", host, "--port", str(port),
                    "--log-level", "warning")
        for sink in Sink:
            # Four workers on one host: the dashboard reads lag itself, none needs /metrics.
            roles.start(f"worker-{sink.value}", "worker", sink.value, "--metrics-port", "0")
        _wait_http(f"http://{host}:{port}/healthz", roles)
        roles.start("simulator", *sim_args)
        console.print(f"[bold]Dashboard:[/] {dashboard_link(host, port, token)}")
        console.print(f"Real stack: API, {len(Sink)} workers and the simulator as separate "
                      f"processes (logs in {logs}) · {rate:g} events/s · Ctrl-C stops",
                      highlight=False)
        sim_proc = roles.procs["simulator"]
        try:
            while sim_proc.poll() is None:
                if roles.dead():
                    console.print(f"[red]stopped early: {', '.join(roles.dead())}[/]")
                    break
                time.sleep(0.5)
            if sim_proc.returncode not in (None, 0):
                console.print(f"[red]the simulator exited with {sim_proc.returncode}[/]")
            elif duration_s is None and events is None:
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            console.print("\nstopping the simulator; the sinks drain…")
        roles.stop("simulator")
        _drained(observatory.snapshot, timeout_s=300)
    finally:
        roles.stop_all()
    # Every write acknowledged so far becomes visible to counts (the index refreshes each
    # second on its own); then the dashboard's view and the direct queries read the same state.
    observatory.audit.refresh()
    after = observatory.snapshot()
    _summary(settings, before, after)
    close()
    delete_groups(settings.kafka, groups)


def _wait_http(url: str, roles: Roles, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "api" in roles.dead():
            break
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    roles.stop_all()
    console.print(f"[red]the API did not answer on {url}; see its log[/]")
    raise typer.Exit(1)


def _drained(take: Callable[[], Snapshot], timeout_s: float) -> Snapshot:
    deadline = time.monotonic() + timeout_s
    snap: Snapshot = take()
    while time.monotonic() < deadline and any(g.lag for g in snap.groups):
        time.sleep(1)
        snap = take()
    return snap


def _summary(settings: Settings, before: Snapshot, after: Snapshot) -> None:
    """The run's counts from the bus next to direct queries of every store."""
    produced = {t: after.produced.get(t, 0) - before.produced.get(t, 0) for t in _EVENT_TOPICS}
    sent = sum(produced.values())
    t = Table("sink", "events for it", "committed", "lag left",
              title=f"{sent:,} events published in this run")
    was = {g.sink: g.consumed for g in before.groups}
    for g in after.groups:
        topics = [x.value for x in topics_for(Sink(g.sink)) if x.value in produced]
        t.add_row(g.sink, f"{sum(produced[x] for x in topics):,}",
                  f"{g.consumed - was.get(g.sink, 0):,}", f"{g.lag:,}")
    console.print(t)
    direct = direct_counts(settings)
    shown = {s.name: s.sizes for s in after.stores}
    d = Table("store", "part", "dashboard", "direct query", "",
              title="What the stores hold: the dashboard's figures vs a query of each store")
    for (store, part), n in direct.items():
        seen = shown.get(store, {}).get(part)
        d.add_row(store, part, "-" if seen is None else f"{seen:,}", f"{n:,}",
                  "[green]=[/]" if seen == n else "[red]≠[/]")
    console.print(d)


def direct_counts(settings: Settings) -> dict[tuple[str, str], int]:
    """Each store counted with its own client, independent of the dashboard's probes."""
    import psycopg
    import redis
    from pymongo import MongoClient

    from polystream.bootstrap import open_audit_index

    out: dict[tuple[str, str], int] = {}
    with psycopg.connect(settings.postgres.dsn(), connect_timeout=5) as conn:
        for table in ACCOUNT_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[("postgres", table)] = int(row[0]) if row else 0
    mongo: MongoClient[dict[str, object]] = MongoClient(settings.mongo.url,
                                                        serverSelectionTimeoutMS=5000)
    try:
        db = mongo[settings.mongo.database]
        for name in CATALOG_COLLECTIONS:
            out[("mongo", name)] = int(db[name].count_documents({}))
    finally:
        mongo.close()
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=5)
    try:
        out[("redis", "keys")] = int(client.dbsize())
    finally:
        client.close()
    index = open_audit_index(settings, read_only=True)
    try:
        index.refresh()
        out[("audit", "events")] = index.count()
        out[("audit", "dead letters")] = index.count(AuditQuery(kind=DocKind.DEAD_LETTER))
    finally:
        index.close()
    return out

