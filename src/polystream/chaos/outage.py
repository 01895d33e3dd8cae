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

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polystream.bootstrap_api import create_app_from_settings
from polystream.bus.admin import ensure_topics
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.ports import PublishError
from polystream.bus.topology import topic_specs
from polystream.chaos.backlog import Log, _deployments, _write
from polystream.chaos.kill import _committed, _sinks, publish_paced
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess
from polystream.settings import Settings
from polystream.stack.manager import Stack

if TYPE_CHECKING:  # the test client pulls httpx and a deprecation warning into every CLI run
    from fastapi.testclient import TestClient

#: The order servers go down in; OpenSearch only when the audit is enabled.
SERVERS = ("postgres", "redis", "ferretdb", "kafka", "opensearch")
API_DEADLINE_S = 2.0


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


@dataclass
class OutageReport:
    events: int
    outages: list[Outage] = field(default_factory=list)
    drained_s: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)

    def lines(self) -> list[str]:
        out = [f"events {self.events:,}, drained at {self.drained_s:.1f}s"]
        for o in self.outages:
            out.append(
                f"{o.server:<10} down {o.down_s:.0f}s, lag before {o.lag_before:,}, back in "
                + (f"{o.recovered_s:.1f}s" if o.recovered_s is not None else "never")
                + ", /healthz " + (f"max {o.healthz_max_s:.2f}s" if o.healthz_max_s is not None
                                   else "unanswered")
                + ("" if o.healthz_ok else " (FAILED)")
                + f", /readyz named it {'yes' if o.readyz_named else 'no'}"
                + f", worker restarts {o.restarts}")
        return out + self.outcome.lines()


def _flush_through(pub: KafkaEventPublisher, timeout_s: float) -> None:
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
    after one 30 s flush, and the rest of the file would count as lost)."""
    publish_paced(settings, path, rate, done, counter, client_id="polystream-chaos-outage",
                  flush=_flush_through, pause_flush_s=300, final_flush_s=300)


def _total_lag(settings: Settings) -> int | None:
    try:
        return sum(_committed(settings, s)[1] for s in _sinks(settings))
    except Exception:  # Kafka itself may be the server that is down
        return None


def _probe_api(client: TestClient, stop: threading.Event,
               samples: list[tuple[str, float, int, dict[str, object]]]) -> None:
    while not stop.is_set():
        for path in ("/healthz", "/readyz"):
            t0 = time.monotonic()
            try:
                r = client.get(path)
                body = r.json() if r.headers.get("content-type", "").startswith(
                    "application/json") else {}
                samples.append((path, time.monotonic() - t0, r.status_code, body))
            except Exception:
                samples.append((path, time.monotonic() - t0, 0, {}))
        stop.wait(0.5)


def _named(server: str, body: dict[str, object]) -> bool:
    checks = body.get("checks")
    if not isinstance(checks, dict):
        return False
    keys = {"ferretdb": ("mongo",), "kafka": ("publisher",), "postgres": ("receipts",),
            "redis": ("redis",), "opensearch": ()}[server]
    return any(k in checks and checks[k] != "ok" for k in keys)


def run_outage_drill(base: Settings, *, events: int, down_s: float, rate: float,
                     seed: int = 19, users: int = 1000, workdir: Path | None = None,
                     recovery_timeout_s: float = 60, timeout_s: float = 1800,
                     servers: tuple[str, ...] = SERVERS, log: Log = print) -> OutageReport:
    tmp = Path(workdir or tempfile.mkdtemp(prefix="polystream-chaos-outage-"))
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"events-{seed}.jsonl"
    _write(path, seed, events, users)
    ensure_topics(base.kafka, topic_specs(base.kafka))
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

        app = create_app_from_settings(settings)
        try:
            with TestClient(app) as client:
                done = threading.Event()
                counter = [0]
                started = time.monotonic()
                publisher = threading.Thread(target=_publish_paced,
                                             args=(base, path, rate, done, counter), daemon=True)
                publisher.start()
                for server in chosen:
                    lag_before = _total_lag(settings) or 0
                    stop_probe = threading.Event()
                    samples: list[tuple[str, float, int, dict[str, object]]] = []
                    restarts = 0
                    stack.down([server])
                    log(f"chaos outage: {server} stopped at {time.monotonic() - started:.1f}s "
                        f"(published {counter[0]:,}, lag {lag_before:,})")
                    prober = threading.Thread(target=_probe_api,
                                              args=(client, stop_probe, samples),
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
                    report.outages.append(outage)
                    log("chaos outage: " + report.lines()[len(report.outages)])
                publisher.join(timeout_s)
                report.events = counter[0]
                report.drained_s = _drain_all(settings, worker, started, timeout_s)
                report.outcome = judge(deployment, settings, path)
        finally:
            stack.up(chosen)  # never leave a server of the stack down
            worker.terminate()
            if worker.wait(30) is None:
                worker.kill()
    return report


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
