"""The kill drill: sink and audit worker processes SIGKILLed at random moments while events
flow, each restarted at once as a supervisor (systemd, Kubernetes) would; then `verify`.

Each sink runs as its own `polystream worker <sink>` process of one isolated deployment (see
`deployment.py`), so one kill takes down exactly one consumer group member with whatever it
had read but not committed. Recovery is measured per kill: from the SIGKILL until the sink's
group commits past where it stood at the kill (restart, rejoin, redo the lost batch, commit).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polystream.bus.admin import committed_total, group_lag
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.ports import BulkEventPublisher, PublishError
from polystream.bus.topology import topics_for
from polystream.chaos.backlog import Log, _deployments, prepare_drill
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess, stop_all
from polystream.domain.events import Sink
from polystream.settings import Settings
from polystream.shred import wrap_publisher
from polystream.simulate import read_recorded


@dataclass
class Kill:
    sink: str
    at_s: float
    recovered_s: float | None  # None: no progress within the recovery timeout


@dataclass
class KillReport:
    events: int
    published_s: float
    drained_s: float
    kills: list[Kill] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)

    def lines(self) -> list[str]:
        rec = [k.recovered_s for k in self.kills if k.recovered_s is not None]
        out = [f"events {self.events:,} published in {self.published_s:.1f}s, "
               f"drained at {self.drained_s:.1f}s",
               f"kills {len(self.kills)} (restarts {len(self.kills)}), by sink: "
               + ", ".join(f"{s} {sum(k.sink == s for k in self.kills)}"
                           for s in sorted({k.sink for k in self.kills})),
               "recovery after a kill: " + (f"median {sorted(rec)[len(rec) // 2]:.1f}s, "
                                            f"max {max(rec):.1f}s" if rec else "none measured")
               + (f", {len(self.kills) - len(rec)} without progress in time"
                  if len(rec) < len(self.kills) else "")]
        return out + self.outcome.lines()


def _sinks(settings: Settings) -> list[Sink]:
    return [s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]


def _committed(settings: Settings, sink: Sink) -> tuple[int, int]:
    """(sum of the committed offsets, records not committed yet) of the sink's group, over
    its topics. The sum comes from the committed offsets alone: end offsets move while
    events are published, and a difference of two reads would count that as progress."""
    topics = [t.value for t in topics_for(sink)]
    group = settings.kafka.consumer_group(sink.value)
    lag = sum(group_lag(settings.kafka, group, topics).values())
    return committed_total(settings.kafka, group, topics), lag


def _flush(pub: BulkEventPublisher, timeout_s: float) -> None:
    pub.flush(timeout_s)


def publish_paced(settings: Settings, path: Path, rate: float, done: threading.Event,
                   counter: list[int], *, client_id: str = "polystream-chaos-kill",
                   flush: Callable[[BulkEventPublisher, float], None] = _flush,
                   pause_flush_s: float = 30, final_flush_s: float = 120,
                   retry_s: float = 0.0) -> None:
    """Publish the recorded events at ``rate`` per second, counting them in ``counter``; set
    ``done`` at the end. ``flush`` drains the producer before each pause and at the end.
    ``retry_s``: how long one event is tried again when the publisher refuses it (as a client
    retries a 503), e.g. while PostgreSQL, where the data keys live, is down."""
    pub = wrap_publisher(settings, KafkaEventPublisher(settings.kafka, client_id=client_id),
                         "drill")
    started = time.monotonic()
    try:
        for ev in read_recorded(path):
            deadline = time.monotonic() + retry_s
            while True:
                try:
                    pub.publish_fire(ev.topic, ev.key, ev.value)
                    break
                except PublishError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.2)
            counter[0] += 1
            ahead = counter[0] / rate - (time.monotonic() - started)
            if ahead > 0.05:
                flush(pub, pause_flush_s)
                time.sleep(ahead)
        flush(pub, final_flush_s)
    finally:
        pub.close(30)
        done.set()


def run_kill_drill(base: Settings, *, events: int, kills: int, rate: float,
                   seed: int = 11, users: int = 1000, workdir: Path | None = None,
                   recovery_timeout_s: float = 60, timeout_s: float = 1800,
                   log: Log = print) -> KillReport:
    """Publish ``events`` at ``rate`` per second and SIGKILL a random sink worker ``kills``
    times, spread over the publishing time at random moments; restart each at once."""
    rng = random.Random(seed)
    tmp, path = prepare_drill(base, "kill", seed=seed, events=events, users=users,
                              workdir=workdir)
    with _deployments(base, ["kill"], log) as (deployment,):
        settings = deployment.settings(base)
        sinks = _sinks(settings)

        def start(sink: Sink) -> PolystreamProcess:
            return PolystreamProcess(["worker", sink.value, "--metrics-port", "0"],
                                     env=deployment.env(), log=tmp / f"worker-{sink.value}.log")

        procs = {s: start(s) for s in sinks}
        report_kills: list[Kill] = []
        try:
            published = threading.Event()
            counter = [0]
            started = time.monotonic()
            publisher = threading.Thread(
                target=publish_paced, args=(base, path, rate, published, counter), daemon=True)
            publisher.start()
            # Random moments, counted in records handed to the producer (a loaded host
            # publishes slower than ``rate``), one per slice: every kill has records after it.
            moments = sorted(int(events * (i + rng.uniform(0.15, 0.85)) / kills)
                             for i in range(kills))
            # Every sink is killed before any is killed twice.
            victims = [s for _ in range(kills // len(sinks) + 1)
                       for s in rng.sample(sinks, len(sinks))]
            for moment, sink in zip(moments, victims, strict=False):
                while counter[0] < moment and not published.is_set():
                    time.sleep(0.05)
                t_kill = time.monotonic()
                at = t_kill - started
                procs[sink].kill()
                # Read after the kill: the dead process can commit nothing more.
                before, _ = _committed(settings, sink)
                procs[sink] = start(sink)
                recovered = _wait_progress(settings, sink, before, t_kill, recovery_timeout_s)
                report_kills.append(Kill(sink.value, at, recovered))
                log(f"chaos kill: {sink.value} SIGKILLed at {at:.1f}s (published "
                    f"{counter[0]:,}), recovered in "
                    + (f"{recovered:.1f}s" if recovered is not None else "never"))
            publisher.join(timeout_s)
            published_s = time.monotonic() - started
            drained_s = _drain(settings, sinks, procs, started, timeout_s, log)
            report = KillReport(counter[0], published_s, drained_s, report_kills)
            report.outcome = judge(deployment, settings, path)
        finally:
            stop_all(procs.values(), log, "chaos kill")
    return report


def _wait_progress(settings: Settings, sink: Sink, before: int, t0: float,
                   timeout_s: float) -> float | None:
    while time.monotonic() - t0 < timeout_s:
        # A sink whose topics are fully committed (small topics, end of the run) has nothing
        # to redo: it counts as recovered at once.
        committed, lag = _committed(settings, sink)
        if committed > before or lag == 0:
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


def _drain(settings: Settings, sinks: list[Sink], procs: dict[Sink, PolystreamProcess],
           started: float, timeout_s: float, log: Log) -> float:
    while True:
        now = time.monotonic() - started
        for sink, proc in procs.items():
            if not proc.alive():
                raise RuntimeError(f"worker {sink.value} exited with {proc.proc.returncode}:\n"
                                   f"{proc.tail()}")
        lags = {s.value: _committed(settings, s)[1] for s in sinks}
        if not any(lags.values()):
            log(f"chaos: drained at {now:.1f}s")
            return now
        if now > timeout_s:
            raise TimeoutError(f"not drained after {timeout_s:.0f}s: lag " + ", ".join(
                f"{s} {n:,}" for s, n in lags.items() if n))
        time.sleep(0.5)
