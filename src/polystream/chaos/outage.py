"""The outage drill: while paced events flow and one `worker all` process drains them, each
server of the stack in turn is stopped for a while and started again, through the same
`Stack` supervisor `polystream stack up|down` uses (so only this stack's servers, on its own
ports, are touched).

Per server it measures how long the drill's sink groups take, from the restart, to bring their
lag back to the level it had just before the stop, and whether the API built in-process on the
drill's settings keeps answering `/healthz` (and `/readyz`, which names the missing store)
within 2 s during the outage. The run ends with `verify` (nothing lost, duplicated or stale).
A worker that exits during an outage is restarted at once, as a supervisor would, and counted.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from polystream.bootstrap_api import create_app_from_settings
from polystream.bus.ports import BulkEventPublisher, PublishError
from polystream.bus.topology import topic_of
from polystream.chaos.backlog import Log, _deployments, prepare_drill
from polystream.chaos.kill import _committed, _sinks, publish_paced
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import SessionLoginStarted, decode
from polystream.settings import Settings
from polystream.shred import read_topics_opened
from polystream.simulate import SimConfig
from polystream.stack.manager import Stack

if TYPE_CHECKING:  # the test client pulls httpx and a deprecation warning into every CLI run
    from fastapi.testclient import TestClient

#: The order servers go down in; OpenSearch only when the audit is enabled.
SERVERS = ("postgres", "redis", "ferretdb", "kafka", "opensearch")
API_DEADLINE_S = 2.0
#: The reads each server serves (none needs Kafka: a read never publishes). `me` marks a read
#: of the drill's logged-in user; {title} is a title of the run. A query with a fresh `q`
#: misses the page cache, so it reaches FerretDB.
READS: dict[str, tuple[str, ...]] = {
    "postgres": ("me:/me", "me:/me/payments"),
    "redis": ("/rankings/trending", "/flags", "me:/me"),
    "ferretdb": ("/titles/{title}/related", "/titles?q={fresh}"),
    "kafka": (),
    "opensearch": ("operator:/audit/events?limit=5",),
}
#: What a read may answer while a server it needs is down: 503, or 200 when another store
#: (the Redis cache) still serves it; never another 5xx, never later than API_DEADLINE_S.
READ_CODES = frozenset({200, 503})


@dataclass
class Outage:
    server: str
    down_s: float
    lag_before: int
    recovered_s: float | None  # from the restart; None: not back within the timeout
    healthz_max_s: float | None  # slowest /healthz answer during the outage
    healthz_ok: bool
    readyz_named: bool  # /readyz reported the missing server (or the publisher) not ok
    restarts: int  # worker exits during this outage
    reads: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # path: (s, code)

    @property
    def reads_ok(self) -> bool:
        """Every read needing the stopped server was asked and each answer was 503 (or a
        200 from the cache) within API_DEADLINE_S."""
        return all(answers and all(t <= API_DEADLINE_S and code in READ_CODES
                                   for t, code in answers)
                   for answers in self.reads.values())

    def reads_line(self) -> str:
        if not self.reads:
            return "no read needs it"
        parts = []
        for path, answers in self.reads.items():
            codes = sorted({c for _, c in answers})
            slowest = max((t for t, _ in answers), default=0.0)
            parts.append(f"{path} {len(answers)}x {'/'.join(map(str, codes)) or '-'} "
                         f"max {slowest:.2f}s")
        return "; ".join(parts) + ("" if self.reads_ok else " (FAILED)")

    def lines(self) -> list[str]:
        o = self
        return [
            f"{o.server:<10} down {o.down_s:.0f}s, lag before {o.lag_before:,}, back in "
            + (f"{o.recovered_s:.1f}s" if o.recovered_s is not None else "never")
            + ", /healthz " + (f"max {o.healthz_max_s:.2f}s" if o.healthz_max_s is not None
                               else "unanswered")
            + ("" if o.healthz_ok else " (FAILED)")
            + f", /readyz named it {'yes' if o.readyz_named else 'no'}"
            + f", worker restarts {o.restarts}",
            f"{'':<10} reads: {o.reads_line()}"]


@dataclass
class OutageReport:
    events: int
    outages: list[Outage] = field(default_factory=list)
    drained_s: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)

    def lines(self) -> list[str]:
        out = [f"events {self.events:,}, drained at {self.drained_s:.1f}s"]
        for o in self.outages:
            out.extend(o.lines())
        return out + self.outcome.lines()


def _flush_through(pub: BulkEventPublisher, timeout_s: float) -> None:
    """Flush, waiting out a Kafka outage: queued records stay queued in the producer while
    the broker is down, so a flush that times out is tried again (until ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pub.flush(30)
            return
        except PublishError:
            if time.monotonic() > deadline:
                raise


def _publish_paced(settings: Settings, path: Path, rate: float, done: threading.Event,
                   counter: list[int]) -> None:
    """The kill drill's publisher, made to outlive a Kafka outage (the kill drill's gives up
    after one 30 s flush, and the rest of the file would count as lost) and a PostgreSQL
    one (a user's first personal field needs their data key: refused until it is back)."""
    publish_paced(settings, path, rate, done, counter, client_id="polystream-chaos-outage",
                  flush=_flush_through, pause_flush_s=300, final_flush_s=300, retry_s=300)


def _total_lag(settings: Settings) -> int | None:
    try:
        return sum(_committed(settings, s)[1] for s in _sinks(settings))
    except Exception:  # Kafka itself may be the server that is down
        return None


@dataclass(frozen=True)
class Callers:
    """Who asks the reads: a user of the run (logged in before the first outage) and the
    operator; and a title of the run."""
    user: dict[str, str]
    operator: dict[str, str]
    title_id: str
    user_id: str
    logged_in_at: datetime

    def request(self, spec: str) -> tuple[str, str, dict[str, str]]:
        """The label, URL and headers of one read of READS."""
        who, _, path = spec.rpartition(":") if spec.startswith(("me:", "operator:")) \
            else ("", "", spec)
        headers = {"me": self.user, "operator": self.operator}.get(who, {})
        url = path.format(title=self.title_id, fresh=f"drill{uuid.uuid4().hex[:8]}")
        return path, url, headers


def _probe_api(client: TestClient, stop: threading.Event,
               samples: list[tuple[str, float, int, dict[str, object]]],
               reads: tuple[str, ...] = (), callers: Callers | None = None) -> None:
    while not stop.is_set():
        asks: list[tuple[str, str, dict[str, str]]] = [
            (path, path, {}) for path in ("/healthz", "/readyz")]
        if callers is not None:
            asks += [callers.request(spec) for spec in reads]
        for label, url, headers in asks:
            t0 = time.monotonic()
            try:
                r = client.get(url, headers=headers)
                body = r.json() if r.headers.get("content-type", "").startswith(
                    "application/json") else {}
                samples.append((label, time.monotonic() - t0, r.status_code, body))
            except Exception:
                samples.append((label, time.monotonic() - t0, 0, {}))
        stop.wait(0.5)


def _first(path: Path, event_type: str) -> list[dict[str, object]]:
    """The payloads of ``event_type`` in the run's file, in order."""
    out = []
    with path.open("rb") as f:
        for line in f:
            if f'"type":"{event_type}"'.encode() in line:
                payload = json.loads(line)["payload"]
                out.append(payload)
    return out


def _callers(client: TestClient, path: Path, seed: int, operator_token: str,
             timeout_s: float) -> Callers:
    """Log in as one of the run's first users once the workers have stored it."""
    password = SimConfig(seed=seed).effective_password
    users = {str(p["email"]): str(p["user_id"]) for p in _first(path, "user.registered")[:5]}
    emails = list(users)
    if not emails:
        raise RuntimeError(f"{path}: no user.registered in the run's events; give more "
                           "events or fewer titles (the catalog comes first)")
    title_id = str(_first(path, "catalog.title_upserted")[0]["title_id"])
    deadline = time.monotonic() + timeout_s
    while True:
        for email in emails:
            asked = datetime.now(UTC)
            r = client.post("/auth/login", json={"email": email, "password": password})
            if r.status_code == 200:
                token = r.json()["access_token"]
                return Callers({"Authorization": f"Bearer {token}"},
                               {"Authorization": f"Bearer {operator_token}"}, title_id,
                               users[email], asked)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no user of the run could log in within {timeout_s:.0f}s "
                               f"(last answer {r.status_code}: {r.text[:200]})")
        time.sleep(1)


def _named(server: str, body: dict[str, object]) -> bool:
    checks = body.get("checks")
    if not isinstance(checks, dict):
        return False
    keys = {"ferretdb": ("mongo",), "kafka": ("publisher",), "postgres": ("postgres",),
            "redis": ("redis", "receipts"), "opensearch": ("audit",)}[server]
    return any(k in checks and checks[k] != "ok" for k in keys)


def run_outage_drill(base: Settings, *, events: int, down_s: float, rate: float,
                     seed: int = 19, users: int = 1000, titles: int | None = None,
                     workdir: Path | None = None,
                     recovery_timeout_s: float = 60, timeout_s: float = 1800,
                     servers: tuple[str, ...] = SERVERS, log: Log = print) -> OutageReport:
    # The catalog is generated first: a short run needs few titles to reach users at all.
    tmp, path = prepare_drill(base, "outage", seed=seed, events=events, users=users,
                              workdir=workdir, titles=titles)
    stack = Stack(base)
    chosen = [s for s in servers if s in stack.servers]
    report = OutageReport(events)
    with _deployments(base, ["outage"], log) as (deployment,):
        settings = deployment.settings(base)

        def start() -> PolystreamProcess:
            return PolystreamProcess(["worker", "all", "--metrics-port", "0"],
                                     env=deployment.env(), log=tmp / "worker-all.log")

        worker = start()
        from fastapi.testclient import TestClient

        # The reads under /audit are the operator's: this run's API gets a token for them.
        operator_token = (settings.api.operator_token.get_secret_value()
                          or secrets.token_urlsafe(24))
        # Its logins poll until the workers stored the run's first users (a slow start on a
        # loaded machine): the per-account limit would lock them out for its whole window.
        app = create_app_from_settings(settings.model_copy(update={
            "api": settings.api.model_copy(update={"operator_token": SecretStr(operator_token),
                                                   "login_attempts_per_account": 10_000,
                                                   "login_attempts_per_address": 10_000})}))
        try:
            with TestClient(app) as client:
                done = threading.Event()
                counter = [0]
                started = time.monotonic()
                publisher = threading.Thread(target=_publish_paced,
                                             args=(base, path, rate, done, counter), daemon=True)
                publisher.start()
                callers = _callers(client, path, seed, operator_token, recovery_timeout_s * 2)
                for server in chosen:
                    lag_before = _total_lag(settings) or 0
                    stop_probe = threading.Event()
                    samples: list[tuple[str, float, int, dict[str, object]]] = []
                    restarts = 0
                    stack.down([server])
                    log(f"chaos outage: {server} stopped at {time.monotonic() - started:.1f}s "
                        f"(published {counter[0]:,}, lag {lag_before:,})")
                    prober = threading.Thread(target=_probe_api,
                                              args=(client, stop_probe, samples,
                                                    READS.get(server, ()), callers),
                                              daemon=True)
                    prober.start()
                    t_down = time.monotonic()
                    while time.monotonic() - t_down < down_s:
                        if not worker.alive():
                            restarts += 1
                            worker = start()
                        time.sleep(0.5)
                    stop_probe.set()
                    prober.join(10)
                    stack.up([server])
                    t_up = time.monotonic()
                    recovered = None
                    while time.monotonic() - t_up < recovery_timeout_s:
                        if not worker.alive():
                            restarts += 1
                            worker = start()
                        lag = _total_lag(settings)
                        if lag is not None and lag <= lag_before + int(rate):
                            recovered = time.monotonic() - t_up
                            break
                        time.sleep(0.5)
                    health = [s for s in samples if s[0] == "/healthz"]
                    outage = Outage(
                        server, down_s, lag_before, recovered,
                        max((s[1] for s in health), default=None),
                        bool(health) and all(s[2] == 200 and s[1] <= API_DEADLINE_S
                                             for s in health),
                        any(s[0] == "/readyz" and _named(server, s[3]) for s in samples),
                        restarts)
                    for spec in READS.get(server, ()):
                        label = callers.request(spec)[0]
                        outage.reads[label] = [(t, code) for name, t, code, _ in samples
                                               if name == label]
                    report.outages.append(outage)
                    for line in outage.lines():
                        log("chaos outage: " + line)
                publisher.join(timeout_s)
                report.events = counter[0]
                report.drained_s = _drain_all(settings, worker, started, timeout_s)
                logins = _add_the_login(settings, path, callers)
                log(f"chaos outage: {logins} login event(s) of the drill's own user added "
                    "to the run's events")
                report.outcome = judge(deployment, settings, path)
        finally:
            stack.up(chosen)  # never leave a server of the stack down
            worker.terminate()
            if worker.wait(30) is None:
                worker.kill()
    return report


def _add_the_login(settings: Settings, path: Path, callers: Callers) -> int:
    """Put into the run's file the `session.login_started` the drill's own login published,
    where the sinks met it: just before the first of the file's events that follows it on its
    partition (the order `verify` replays must be the order the sinks applied). The API's own
    Redis keys of the login (`auth:`) are not the sinks' and verify skips them."""
    topic = topic_of("session.login_started").value
    since = callers.logged_in_at - timedelta(seconds=5)
    logins: list[tuple[int, int, bytes]] = []
    partitions = read_topics_opened(settings, [topic], since=since)
    for records in partitions.values():
        for rec in records:
            try:
                event = decode(rec.value)
            except InvalidEvent:
                continue
            if (isinstance(event.payload, SessionLoginStarted)
                    and event.payload.user_id == callers.user_id):
                logins.append((rec.partition, rec.offset, rec.value))
    lines = path.read_bytes().splitlines(keepends=True)
    index = {str(json.loads(line)["event_id"]): i for i, line in enumerate(lines)}
    for partition, offset, value in sorted(logins, key=lambda x: -x[1]):
        later = [index[eid] for rec in partitions[(topic, partition)] if rec.offset > offset
                 and (eid := _event_id(rec.value)) in index]
        lines.insert(min(later, default=len(lines)), value + b"\n")
    path.write_bytes(b"".join(lines))
    return len(logins)


def _event_id(value: bytes) -> str | None:
    try:
        return str(json.loads(value)["event_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _drain_all(settings: Settings, worker: PolystreamProcess, started: float,
               timeout_s: float) -> float:
    while True:
        now = time.monotonic() - started
        if not worker.alive():
            raise RuntimeError(f"worker all exited with {worker.proc.returncode}:\n"
                               f"{worker.tail()}")
        if _total_lag(settings) == 0:
            return now
        if now > timeout_s:
            raise TimeoutError(f"not drained after {timeout_s:.0f}s")
        time.sleep(0.5)
