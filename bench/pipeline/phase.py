"""One phase of the pipeline benchmark: fresh stores and consumer groups, the workers started
as users start them, the simulator publishing, and the clock running until every consumer
group has committed everything published (nothing deferred: a worker never commits past a
deferred event)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.pipeline.isolation import Workspace
from bench.pipeline.kafka_offsets import (
    TP,
    Kafka,
    Offsets,
    ReceiptCollector,
    Receipts,
    first_records,
)
from bench.pipeline.procs import Sampler, Worker, start_workers, stop_workers
from bench.pipeline.stream import STORE_SINKS, Indexed, SimRun, indexed, percentiles, simulate
from polystream.bus.topology import Topic, topics_for
from polystream.domain.events import Sink

POINTS: Final = (50.0, 95.0, 99.0)
POLL_S: Final = 0.2
READY_TIMEOUT_S: Final = 120.0
EVENT_TOPICS: Final = tuple(t.value for t in Topic if t not in (Topic.RECEIPTS, Topic.DEADLETTER))
ALL_TOPICS: Final = tuple(t.value for t in Topic)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    label: str
    #: ``all`` = one ``polystream worker all``; ``per-sink`` = one process per sink.
    mode: str
    #: Events per second, open loop; 0 = as fast as the simulator goes.
    rate: float = 0.0
    events: int | None = None
    duration_s: float | None = None
    #: How long to wait for every group to reach lag 0 after the simulator finished.
    drain_cap_s: float = 300.0

    @property
    def sinks(self) -> list[str]:
        return ["all"] if self.mode == "all" else [s.value for s in Sink]

    @property
    def planned(self) -> int:
        if self.events is not None:
            return self.events
        assert self.duration_s is not None and self.rate > 0
        return math.ceil(self.rate * self.duration_s)


@dataclass
class SinkDrain:
    sink: str
    #: Records on the sink's topics (what it reads) and events it applies (what concerns it).
    records: int
    events: int
    seconds: float | None

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Freshness:
    """Publish (the event's scheduled send time) -> receipt of every store that consumes it."""

    events: int
    received: int
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float
    #: Events still without every receipt when the phase ended (counted as slower than all).
    missing: int

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


@dataclass
class PhaseResult:
    spec: PhaseSpec
    names: str
    sim: SimRun | None = None
    published: int = 0
    first_record_at: float = 0.0
    drains: dict[str, SinkDrain] = field(default_factory=dict)
    all_drained_s: float | None = None
    freshness: Freshness | None = None
    freshness_by_sink: dict[str, Freshness] = field(default_factory=dict)
    receipt_statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    receipts_check: dict[str, Any] = field(default_factory=dict)
    #: The phase's records on the event topics: [starts, ends) per partition.
    starts: Offsets = field(default_factory=dict)
    ends: Offsets = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    bench_cpu_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: Worth knowing, not a failure (e.g. events delivered twice after a transient error).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def end_to_end_rate(self) -> float:
        return self.published / self.all_drained_s if self.all_drained_s else 0.0

    @property
    def ratio_to_simulator(self) -> float | None:
        if self.sim is None or not self.sim.acked_rate or not self.end_to_end_rate:
            return None
        return self.end_to_end_rate / self.sim.acked_rate

    @property
    def ok(self) -> bool:
        return not self.problems and (self.all_drained_s is not None or self.spec.rate > 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.spec.label,
            "mode": self.spec.mode,
            "rate": self.spec.rate,
            "planned_events": self.spec.planned,
            "duration_s": self.spec.duration_s,
            "drain_cap_s": self.spec.drain_cap_s,
            "names": self.names,
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "seconds": self.seconds,
            "published": self.published,
            "simulator": None if self.sim is None else {
                k: v for k, v in self.sim.__dict__.items() if k != "output_tail"},
            "first_record_at": self.first_record_at,
            "end_to_end_s": self.all_drained_s,
            "end_to_end_rate": self.end_to_end_rate,
            "ratio_to_simulator": self.ratio_to_simulator,
            "sinks": {
                name: {**d.__dict__, "records_per_s": d.records_per_s,
                       "events_per_s": d.events_per_s}
                for name, d in self.drains.items()
            },
            "freshness": None if self.freshness is None else self.freshness.to_json(),
            "freshness_by_sink": {k: v.to_json() for k, v in self.freshness_by_sink.items()},
            "receipt_statuses": self.receipt_statuses,
            "receipts_check": self.receipts_check,
            "workers": self.workers,
            "bench_cpu_s": self.bench_cpu_s,
        }


def _group_topics(sink: Sink) -> list[str]:
    return [t.value for t in topics_for(sink)]


def run_phase(ws: Workspace, kafka: Kafka, spec: PhaseSpec, log_dir: Path,
              progress: Progress) -> PhaseResult:
    started = time.perf_counter()
    cpu0 = time.process_time()
    names = ws.phase(spec.label)
    result = PhaseResult(spec, names.tag)
    workers: list[Worker] = []
    collector: ReceiptCollector | None = None
    try:
        starts = kafka.ends(ALL_TOPICS)
        groups = {sink: f"{names.group_prefix}-{sink.value}" for sink in Sink}
        for sink, group in groups.items():
            kafka.position(group, {tp: off for tp, off in starts.items()
                                   if tp[0] in _group_topics(sink)})
            ws.groups.append(group)
        collector = ReceiptCollector(ws.settings, starts, f"{names.group_prefix}-bench").start()
        # One folder per phase: two phases run `worker all`, and the first one's log matters.
        phase_logs = log_dir / spec.label
        phase_logs.mkdir(exist_ok=True)
        workers = start_workers(spec.sinks, names.env(), phase_logs)
        _wait_ready(kafka, groups, workers, starts)
        _check_positions(kafka, groups, starts, result)
        for worker in workers:
            worker.mark("ready")
        progress(f"  {spec.label}: workers ready ({', '.join(spec.sinks)}); publishing "
                 f"{spec.planned:,} events"
                 + (f" at {spec.rate:,.0f}/s" if spec.rate else " as fast as possible"))
        with Sampler(workers):
            result.sim = simulate(names.env(), events=spec.events, rate=spec.rate,
                                  duration_s=spec.duration_s)
            result.problems += result.sim.problems
            result.published = result.sim.sent
            done_at = _drain(kafka, groups, starts, workers, spec, result, progress)
            for worker in workers:
                worker.mark("drained")
        receipts_end = kafka.ends([Topic.RECEIPTS.value])
        deadline = time.monotonic() + 15
        while not collector.caught_up(receipts_end) and time.monotonic() < deadline:
            time.sleep(0.1)
        receipts = collector.stop()
        collector = None
        result.receipt_statuses = receipts.statuses
        _check_receipts(indexed(result.published) if result.published else None, receipts,
                        result, drained=len(done_at) == len(groups))
        if receipts.unreadable:
            result.problems.append(f"{receipts.unreadable} receipts could not be read")

        event_ends = kafka.ends(EVENT_TOPICS)
        result.starts, result.ends = starts, event_ends
        index = indexed(result.published) if result.published else None
        first = first_records(ws.settings, starts, event_ends, f"{names.group_prefix}-first")
        result.first_record_at = _first_sent_at(first, index, result)
        for name, drain in result.drains.items():
            at = done_at.get(name)
            drain.seconds = at - result.first_record_at if at is not None else None
        if len(done_at) == len(groups):
            result.all_drained_s = max(done_at.values()) - result.first_record_at
        if index is not None and spec.rate > 0:
            end_at = time.time()
            result.freshness, result.freshness_by_sink = _freshness(
                index, receipts.at, result.first_record_at, spec.rate, end_at)
    except Exception as exc:
        result.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        if collector is not None:
            collector.stop()
        for worker in workers:
            if worker.proc.poll() is not None and worker.proc.returncode not in (0, -15):
                result.problems.append(
                    f"worker {worker.name} exited {worker.proc.returncode}: "
                    f"{worker.log_tail(8)}")
        result.problems += stop_workers(workers)
        result.workers = [
            {
                "process": f"worker {w.name}",
                "pid": w.proc.pid,
                "peak_rss_mib": round(w.peak_rss_mib, 1),
                "tree_peak_rss_mib": round(w.tree_peak_rss_mib, 1),
                "processes": w.processes,
                "cpu_s_drain": round(w.cpu_between("ready", "drained"), 2),
                "cpu_s_total": round(w.last.cpu_s, 2),
                "threads": w.last.threads,
                "log": str(w.log_path),
            }
            for w in workers
        ]
        ws.drop_phase(names)
        result.seconds = time.perf_counter() - started
        result.bench_cpu_s = time.process_time() - cpu0
    return result


def _wait_ready(kafka: Kafka, groups: dict[Sink, str], workers: Sequence[Worker],
                starts: Offsets) -> None:
    """Until every group's members hold all its partitions (the workers have migrated,
    connected and joined)."""
    wanted = {sink: sum(1 for tp in starts if tp[0] in _group_topics(sink)) for sink in groups}
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = dict(groups)
    while pending:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited {worker.proc.returncode} while "
                                   f"starting:\n{worker.log_tail()}")
        for sink, group in list(pending.items()):
            if kafka.assigned(group) >= wanted[sink]:
                del pending[sink]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"groups not ready after {READY_TIMEOUT_S:.0f}s: "
                               f"{sorted(pending.values())}")
        time.sleep(0.25)


def _check_positions(kafka: Kafka, groups: dict[Sink, str], starts: Offsets,
                     result: PhaseResult) -> None:
    """The groups must start exactly at the phase's first offsets (nothing older read)."""
    for sink, group in groups.items():
        tps = [tp for tp in starts if tp[0] in _group_topics(sink)]
        committed = kafka.committed(group, tps)
        wrong = {f"{t}[{p}]": (committed.get((t, p)), starts[(t, p)]) for t, p in tps
                 if starts[(t, p)] > 0 and committed.get((t, p)) != starts[(t, p)]}
        if wrong:
            result.problems.append(f"group {group} not at the phase's start: {wrong}")


def _drain(kafka: Kafka, groups: dict[Sink, str], starts: Offsets, workers: Sequence[Worker],
           spec: PhaseSpec, result: PhaseResult, progress: Progress) -> dict[str, float]:
    """Poll the groups' committed offsets until each reaches the end of its topics; returns
    the wall-clock time (epoch seconds) each got there."""
    event_ends = kafka.ends(EVENT_TOPICS)
    index = indexed(result.published) if result.published else None
    for sink in groups:
        topics = _group_topics(sink)
        records = sum(event_ends[tp] - starts[tp] for tp in event_ends if tp[0] in topics)
        events = index.count_for(sink) if index is not None else 0
        result.drains[sink.value] = SinkDrain(sink.value, records, events, None)
    targets: dict[Sink, Offsets] = {
        sink: {tp: off for tp, off in event_ends.items() if tp[0] in _group_topics(sink)}
        for sink in STORE_SINKS
    }
    done: dict[str, float] = {}
    deadline = time.monotonic() + spec.drain_cap_s
    last_note = time.monotonic()
    while len(done) < len(groups):
        now = time.monotonic()
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited {worker.proc.returncode}:\n"
                                   f"{worker.log_tail()}")
        for sink, target in list(targets.items()):
            if sink.value in done:
                continue
            committed = kafka.committed(groups[sink], list(target))
            if all(committed.get(tp, -1) >= off or off <= starts[tp]
                   for tp, off in target.items()):
                done[sink.value] = time.time()
        if Sink.AUDIT not in targets and all(s.value in done for s in STORE_SINKS):
            # Every receipt exists once the store groups committed (receipts are acked before
            # the commit): now the auditor's whole input is known.
            tail = kafka.ends([Topic.RECEIPTS.value, Topic.DEADLETTER.value])
            targets[Sink.AUDIT] = {**event_ends, **tail}
            audit = result.drains[Sink.AUDIT.value]
            audit.records = sum(off - starts[tp] for tp, off in targets[Sink.AUDIT].items())
        if len(done) == len(groups):
            break
        if now > deadline:
            lag = _lags(kafka, groups, targets, starts)
            text = f"not drained within {spec.drain_cap_s:.0f}s after publishing: lag {lag}"
            # Open loop above capacity is a finding (the rate is not sustained), not a failure
            # of the run; at full speed nothing can be reported without lag 0.
            (result.notes if spec.rate else result.problems).append(text)
            break
        if now - last_note > 10:
            last_note = now
            progress(f"    draining: {sorted(done) or 'none'} at lag 0; "
                     f"lag {_lags(kafka, groups, targets, starts)}")
        time.sleep(POLL_S)
    return done


def _lags(kafka: Kafka, groups: dict[Sink, str], targets: dict[Sink, Offsets],
          starts: Offsets) -> dict[str, int]:
    out: dict[str, int] = {}
    for sink, target in targets.items():
        committed = kafka.committed(groups[sink], list(target))
        out[sink.value] = sum(max(0, off - max(committed.get(tp, 0), starts[tp]))
                              for tp, off in target.items())
    return out


def _check_receipts(index: Indexed | None, receipts: Receipts, result: PhaseResult, *,
                    drained: bool) -> None:
    """One receipt per event and store that consumes it: none missing once drained, none for
    an event this phase did not publish (an older record read by mistake)."""
    if index is None:
        return
    expected = {s.value: 0 for s in STORE_SINKS}
    for stores in index.stores:
        for sink in stores:
            expected[sink] += 1
    got = {s: 0 for s in expected}
    foreign = 0
    for event_id, sinks in receipts.at.items():
        if event_id not in index.position:
            foreign += 1
            continue
        for sink in sinks:
            if sink in got:
                got[sink] += 1
    total = {s: sum(receipts.statuses.get(s, {}).values()) for s in expected}
    result.receipts_check = {"expected": expected, "received": got, "receipts": total,
                             "foreign_events": foreign}
    twice = {s: total[s] - got[s] for s in expected if total[s] > got[s]}
    if twice:
        result.notes.append(f"events with more than one receipt of a store: {twice} "
                               "(records read twice: redelivery, or an older run's records)")
    if foreign:
        result.problems.append(f"receipts for {foreign} events this phase did not publish")
    if drained and got != expected:
        result.problems.append(f"receipts per store {got}, expected {expected}")


def _first_sent_at(first: dict[TP, tuple[int, bytes]], index: Indexed | None,
                   result: PhaseResult) -> float:
    """The produce time (Kafka timestamp) of the simulator's first event: the schedule's t0."""
    if not first:
        result.problems.append("no record found after the phase's start offsets")
        return time.time()
    earliest = min(ts for ts, _ in first.values()) / 1000
    if index is None or not index.ids:
        return earliest
    wanted = index.ids[0].encode()
    for ts, value in first.values():
        if wanted in value:
            return ts / 1000
    result.problems.append("the simulator's first event is not the first record of its "
                           "partition (someone else published during the run?)")
    return earliest


def _freshness(index: Indexed, at: dict[str, dict[str, float]], t0: float, rate: float,
               end_at: float) -> tuple[Freshness, dict[str, Freshness]]:
    overall: list[float] = []
    by_sink: dict[str, list[float]] = {s.value: [] for s in STORE_SINKS}
    missing = 0
    missing_by: dict[str, int] = {s.value: 0 for s in STORE_SINKS}
    inf = float("inf")
    for i, event_id in enumerate(index.ids):
        stores = index.stores[i]
        if not stores:
            continue
        scheduled = t0 + i / rate
        got = at.get(event_id, {})
        worst = 0.0
        for sink in stores:
            when = got.get(sink)
            latency = when - scheduled if when is not None else inf
            by_sink[sink].append(latency)
            if when is None:
                missing_by[sink] += 1
            worst = max(worst, latency)
        if worst == inf:
            missing += 1
        overall.append(worst)
    return (_summary(overall, missing),
            {s: _summary(v, missing_by[s]) for s, v in by_sink.items() if v})


def _summary(values: list[float], missing: int) -> Freshness:
    p50, p95, p99 = percentiles(values, POINTS)
    return Freshness(events=len(values), received=len(values) - missing, p50_s=p50, p95_s=p95,
                     p99_s=p99, max_s=max(values) if values else float("nan"), missing=missing)


def log_dir_for(base: Path, run_id: str) -> Path:
    path = base / f"logs-{run_id}"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
