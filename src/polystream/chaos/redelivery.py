"""Two drills about records that arrive more than once or out of date, over per-sink
`polystream worker <sink>` processes of one isolated deployment:

- duplicates: the producer side re-sends a share of the records (the same event again, a
  little later, as a producer retry or an at-least-once relay does) and sends older versions
  of edited titles, with other content and new event ids, after the newer ones (a late
  writer): the
  stores must end as the original events imply, the newest version winning (`verify`).
- replay: every sink group is rewound to where the deployment started reading (the whole log
  it has ever consumed: its "offset 0") and drains it all again into the same stores: each
  store's snapshot digest must not change.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polystream.bus.admin import commit_group_offsets, end_offsets, ensure_topics, group_lag
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.topology import topic_specs, topics_for
from polystream.chaos.backlog import Log, _deployments, _write
from polystream.chaos.deployment import Deployment
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess, stop_all
from polystream.domain.events import Sink
from polystream.settings import Settings
from polystream.shred import wrap_publisher
from polystream.simulate import SimEvent, read_recorded

VERSIONED = frozenset({"catalog.title_upserted"})


@dataclass
class Injected:
    duplicates: int = 0
    stale: int = 0


@dataclass
class RedeliveryReport:
    events: int
    injected: Injected
    drained_s: float
    outcome: Outcome
    replay_drained_s: float | None = None
    digests_before: dict[str, str] = field(default_factory=dict)
    digests_after: dict[str, str] = field(default_factory=dict)
    replay_outcome: Outcome | None = None

    @property
    def changed(self) -> list[str]:
        return [s for s in self.digests_before
                if self.digests_before[s] != self.digests_after.get(s)]

    def lines(self) -> list[str]:
        out = [f"events {self.events:,}, injected {self.injected.duplicates:,} duplicates and "
               f"{self.injected.stale:,} stale versions; drained in {self.drained_s:.1f}s",
               *self.outcome.lines()]
        if self.replay_outcome is not None:
            out += [f"replay from the start drained in {self.replay_drained_s:.1f}s; digests "
                    + ", ".join(f"{s} {d[:12]}" for s, d in sorted(self.digests_before.items()))
                    + ("; unchanged" if not self.changed
                       else f"; CHANGED: {', '.join(self.changed)}"),
                    *("after replay: " + line for line in self.replay_outcome.lines())]
        return out


def _with_redeliveries(path: Path, truth: Path, share: float, rng: random.Random,
                       injected: Injected) -> Iterator[SimEvent]:
    """The records to publish: the file's, plus ``share`` of them again a few records later;
    some title upserts are followed by a newer edit (written to ``truth`` too: the events
    `verify` holds the stores to) and, a little later, by the older version again under a
    fresh event id, as a late writer would send it."""
    delayed: list[tuple[int, SimEvent]] = []
    with truth.open("wb") as out:
        for i, ev in enumerate(read_recorded(path)):
            out.write(ev.value + b"\n")
            yield ev
            if rng.random() < share:
                delayed.append((i + rng.randint(1, 200), ev))
                injected.duplicates += 1
            if ev.type in VERSIONED and rng.random() < min(1.0, share * 5):
                doc = json.loads(ev.value)
                edit = {**doc, "event_id": str(uuid.uuid4()),
                        "payload": {**doc["payload"], "version": doc["payload"]["version"] + 1,
                                    "title": f"{doc['payload']['title']} (edited)"}}
                newer = SimEvent(ev.type, ev.topic, ev.key, json.dumps(edit).encode())
                out.write(newer.value + b"\n")
                yield newer
                stale = {**doc, "event_id": str(uuid.uuid4())}
                delayed.append((i + rng.randint(1, 50), SimEvent(
                    ev.type, ev.topic, ev.key, json.dumps(stale).encode())))
                injected.stale += 1
            due = [d for d in delayed if d[0] <= i]
            delayed = [d for d in delayed if d[0] > i]
            yield from (ev for _, ev in due)
        yield from (ev for _, ev in delayed)


def _sinks(settings: Settings) -> list[Sink]:
    return [s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]


def _lag(settings: Settings, sinks: list[Sink]) -> int:
    return sum(sum(group_lag(settings.kafka, settings.kafka.consumer_group(s.value),
                             [t.value for t in topics_for(s)]).values()) for s in sinks)


def _positions(settings: Settings, sinks: list[Sink]) -> dict[Sink, dict[tuple[str, int], int]]:
    """Where each sink group stands now, for a group that was just started at the end."""
    out: dict[Sink, dict[tuple[str, int], int]] = {}
    for sink in sinks:
        out[sink] = {(t.value, p): o for t in topics_for(sink)
                     for p, o in end_offsets(settings.kafka, t.value).items()}
    return out


@contextmanager
def _workers(deployment: Deployment, sinks: list[Sink], tmp: Path,
             log: Log) -> Iterator[dict[Sink, PolystreamProcess]]:
    procs = {s: PolystreamProcess(["worker", s.value, "--metrics-port", "0"],
                                  env=deployment.env(), log=tmp / f"worker-{s.value}.log")
             for s in sinks}
    try:
        yield procs
    finally:
        stop_all(procs.values(), log, "chaos")


def _drain(settings: Settings, sinks: list[Sink], procs: dict[Sink, PolystreamProcess],
           timeout_s: float) -> float:
    started = time.monotonic()
    time.sleep(1.0)
    while True:
        for sink, proc in procs.items():
            if not proc.alive():
                raise RuntimeError(f"worker {sink.value} exited with {proc.proc.returncode}:\n"
                                   f"{proc.tail()}")
        if _lag(settings, sinks) == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"not drained after {timeout_s:.0f}s")
        time.sleep(0.5)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def store_digests(settings: Settings) -> dict[str, str]:
    """A digest of each store's whole content as `verify` reads it (Redis without expiries:
    they count from processing time)."""
    from polystream.cli.verify import store_contents

    accounts, catalog, live = store_contents(settings)
    live_values = {k: (t, v) for k, (t, v, _) in live.items()}
    return {name: hashlib.sha256(json.dumps(_plain(part), sort_keys=True).encode()).hexdigest()
            for name, part in (("postgres", accounts), ("mongo", catalog),
                               ("redis", live_values))}


def run_redelivery_drill(base: Settings, *, events: int, share: float = 0.10,
                         replay: bool = True, seed: int = 13, users: int = 1000,
                         workdir: Path | None = None, timeout_s: float = 1800,
                         log: Log = print) -> RedeliveryReport:
    """Publish ``events`` with ``share`` of them duplicated and stale title versions injected,
    drain, verify; then (``replay``) rewind every group to its start, drain again, and compare
    the stores' digests."""
    rng = random.Random(seed)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="polystream-chaos-redelivery-"))
    tmp.mkdir(parents=True, exist_ok=True)
    generated, path = tmp / f"generated-{seed}.jsonl", tmp / f"events-{seed}.jsonl"
    _write(generated, seed, events, users)
    ensure_topics(base.kafka, topic_specs(base.kafka))
    injected = Injected()
    with _deployments(base, ["redelivery"], log) as (deployment,):
        settings = deployment.settings(base)
        sinks = _sinks(settings)
        starts = _positions(settings, sinks)
        pub = wrap_publisher(base, KafkaEventPublisher(
            base.kafka, client_id="polystream-chaos-redelivery"), "chaos-redelivery")
        try:
            for ev in _with_redeliveries(generated, path, share, rng, injected):
                pub.publish_fire(ev.topic, ev.key, ev.value)
            pub.flush(120)
        finally:
            pub.close(30)
        log(f"chaos redelivery: published {events:,} events, {injected.duplicates:,} "
            f"duplicates, {injected.stale:,} stale versions")
        with _workers(deployment, sinks, tmp, log) as procs:
            drained = _drain(settings, sinks, procs, timeout_s)
        log(f"chaos redelivery: drained in {drained:.1f}s")
        report = RedeliveryReport(events, injected, drained, judge(deployment, settings, path))
        if replay:
            report.digests_before = store_digests(settings)
            for sink in sinks:
                commit_group_offsets(settings.kafka, settings.kafka.consumer_group(sink.value),
                                     starts[sink])
            with _workers(deployment, sinks, tmp, log) as procs:
                report.replay_drained_s = _drain(settings, sinks, procs, timeout_s)
            log(f"chaos replay: drained again in {report.replay_drained_s:.1f}s")
            report.digests_after = store_digests(settings)
            report.replay_outcome = judge(deployment, settings, path)
    return report
