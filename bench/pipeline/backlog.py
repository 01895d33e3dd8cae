"""``python -m bench.pipeline.backlog``: one worker draining a recorded backlog, code variants
side by side.

    python -m bench.pipeline.backlog [--events N] [--sinks redis,audit] [--reps 3]
                                     [--variant LABEL=SRC_DIR[:ARGS]] ... [--out DIR]

The backlog is recorded once: ``polystream simulate --seed 7 --events N --rate 0`` onto the
topics, then the store sinks (``worker postgres``, ``mongo``, ``redis``, one process each)
drain it so that the receipts topic holds every store's receipts, as the auditor meets them
behind a real pipeline. Then, for each repetition, each sink and each variant in turn
(interleaved, so a noisy moment on the shared machine weighs on every variant): fresh stores
and a fresh consumer group positioned at the backlog's first offsets, one
``polystream worker <sink>`` process, and the clock from "the group holds all its partitions"
to "the group committed up to the backlog's end". The worker's CPU seconds over the same span
are read from ``/proc``.

A *variant* runs the same command with ``PYTHONPATH=SRC_DIR`` (e.g. an export of an older
commit: ``git archive <rev> src | tar -x -C /tmp/old``) and optional extra worker arguments
(``--variant fold0=src:--fold-ms=0``); the default is this checkout alone (``ours=src``).
Results are medians per sink and variant, with the ratio to the first variant, and a JSON under
``bench/results/backlog-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bench.pipeline.isolation import Names, Workspace
from bench.pipeline.kafka_offsets import Kafka, Offsets
from bench.pipeline.procs import Worker, start_workers, stop_workers, usage
from bench.pipeline.stream import simulate
from polystream.bus.topology import Topic, topics_for
from polystream.domain.events import Sink
from polystream.settings import load_settings

ROOT: Final = Path(__file__).resolve().parents[2]
RESULTS_DIR: Final = ROOT / "bench" / "results"
PREP_SINKS: Final = ("postgres", "mongo", "redis")
READY_TIMEOUT_S: Final = 120.0
DRAIN_CAP_S: Final = 600.0
POLL_S: Final = 0.1
#: Servers whose own CPU seconds are read around each drain (one process each).
SERVERS: Final = ("opensearch", "redis", "kafka")


@dataclass(frozen=True)
class Variant:
    label: str
    src: Path
    args: tuple[str, ...] = ()


@dataclass
class Drain:
    sink: str
    variant: str
    rep: int
    records: int
    seconds: float | None = None
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    #: CPU seconds each server used while the worker drained (anyone else's work included).
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def parse_variant(text: str) -> Variant:
    label, _, rest = text.partition("=")
    src, _, args = rest.partition(":")
    if not label or not src:
        raise argparse.ArgumentTypeError(f"--variant LABEL=SRC_DIR[:ARGS], got {text!r}")
    path = Path(src)
    if not path.is_absolute():
        path = ROOT / path
    if not (path / "polystream").is_dir():
        raise argparse.ArgumentTypeError(f"{path} holds no polystream package")
    return Variant(label, path.resolve(), tuple(a for a in args.split(",") if a))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline.backlog",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sinks", default="redis,audit")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variant", action="append", type=parse_variant, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def _topics(sink: str) -> list[str]:
    return [t.value for t in topics_for(Sink(sink))]


def _group_target(sink: str, starts: Offsets, ends: Offsets) -> Offsets:
    topics = set(_topics(sink))
    return {tp: off for tp, off in ends.items() if tp[0] in topics and off > starts[tp]}


def server_pids(home: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for name in SERVERS:
        try:
            pids[name] = int(json.loads((home / "run" / f"{name}.pid").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return pids


def _server_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: usage(pid).cpu_s for name, pid in pids.items()}


def _wait(kafka: Kafka, group: str, partitions: int, worker: Worker) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while kafka.assigned(group) < partitions:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited {worker.proc.returncode}: {worker.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} not ready after {READY_TIMEOUT_S:.0f}s")
        time.sleep(POLL_S)


def _drained(kafka: Kafka, group: str, target: Offsets) -> bool:
    committed = kafka.committed(group, list(target))
    return all(committed.get(tp, -1) >= off for tp, off in target.items())


def record_backlog(ws: Workspace, kafka: Kafka, events: int, log_dir: Path,
                   console: Console) -> tuple[Offsets, Offsets]:
    """Publish the backlog and let the store sinks write their receipts; [starts, ends)."""
    all_topics = [t.value for t in Topic]
    starts = kafka.ends(all_topics)
    names = ws.phase("prep")
    try:
        run = simulate(names.env(), events=events)
        if run.problems:
            raise RuntimeError(f"simulate: {run.problems}")
        event_ends = kafka.ends(all_topics)
        groups = {}
        for sink in PREP_SINKS:
            group = f"{names.group_prefix}-{sink}"
            kafka.position(group, {tp: starts[tp] for tp in starts if tp[0] in _topics(sink)})
            ws.groups.append(group)
            groups[sink] = group
        (log_dir / "prep").mkdir(parents=True, exist_ok=True)
        workers = start_workers(list(PREP_SINKS), names.env(), log_dir / "prep")
        try:
            deadline = time.monotonic() + DRAIN_CAP_S
            pending = dict(groups)
            while pending:
                for sink, group in list(pending.items()):
                    if _drained(kafka, group, _group_target(sink, starts, event_ends)):
                        del pending[sink]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"store sinks not drained: {sorted(pending)}")
                time.sleep(0.5)
        finally:
            stop_workers(workers)
        ends = kafka.ends(all_topics)
        console.print(f"backlog: {run.sent:,} events, "
                      f"{sum(ends[tp] - starts[tp] for tp in ends):,} records with receipts")
        return starts, ends
    finally:
        ws.drop_phase(names)


def drain_once(ws: Workspace, kafka: Kafka, sink: str, variant: Variant, rep: int,
               starts: Offsets, ends: Offsets, log_dir: Path,
               servers: dict[str, int]) -> Drain:
    target = _group_target(sink, starts, ends)
    drain = Drain(sink, variant.label, rep, sum(off - starts[tp] for tp, off in target.items()))
    names: Names = ws.phase(f"{sink}_{variant.label}_{rep}".replace("-", "_"))
    group = f"{names.group_prefix}-{sink}"
    workers: list[Worker] = []
    try:
        kafka.position(group, {tp: starts[tp] for tp in starts if tp[0] in _topics(sink)})
        ws.groups.append(group)
        here = log_dir / names.tag
        here.mkdir(parents=True, exist_ok=True)
        env = {**names.env(), "PYTHONPATH": str(variant.src)}
        workers = start_workers([sink], env, here, extra=variant.args)
        worker = workers[0]
        _wait(kafka, group, sum(1 for tp in starts if tp[0] in _topics(sink)), worker)
        worker.mark("ready")
        cpu0 = _server_cpu(servers)
        began = time.perf_counter()
        deadline = time.monotonic() + DRAIN_CAP_S
        while not _drained(kafka, group, target):
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited {worker.proc.returncode}: "
                                   f"{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not drained within {DRAIN_CAP_S:.0f}s")
            time.sleep(POLL_S)
            worker.sample()
        drain.seconds = time.perf_counter() - began
        cpu1 = _server_cpu(servers)
        drain.server_cpu_s = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1 if k in cpu0}
        worker.mark("drained")
        drain.cpu_s = worker.cpu_between("ready", "drained")
        drain.peak_rss_mib = worker.peak_rss_mib
    except Exception as exc:
        drain.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        drain.problems += stop_workers(workers)
        ws.drop_phase(names)
    return drain


def _servers(drains: list[Drain]) -> str:
    return ", ".join(
        f"{name} {statistics.median(d.server_cpu_s.get(name, 0.0) for d in drains):.1f}"
        for name in SERVERS)


def summarise(drains: list[Drain], variants: list[Variant], sinks: list[str]) -> Table:
    table = Table(title="backlog drained by one worker process (median of repetitions)")
    for name in ("sink", "variant", "records", "runs", "seconds", "records/s", "vs first",
                 "CPU s", "CPU µs/record", "peak RSS MiB", "server CPU s"):
        table.add_column(name, justify="left" if name in ("sink", "variant") else "right")
    for sink in sinks:
        first: float | None = None
        for variant in variants:
            ok = [d for d in drains if d.sink == sink and d.variant == variant.label
                  and d.seconds and not d.problems]
            if not ok:
                table.add_row(sink, variant.label, "-", "0", *["-"] * 7)
                continue
            rate = statistics.median(d.rate for d in ok)
            first = rate if first is None else first
            cpu = statistics.median(d.cpu_s for d in ok)
            table.add_row(sink, variant.label, f"{ok[0].records:,}", str(len(ok)),
                          f"{statistics.median(d.seconds or 0 for d in ok):.1f}",
                          f"{rate:,.0f}", f"{rate / first:.2f}", f"{cpu:.1f}",
                          f"{1e6 * cpu / ok[0].records:.0f}",
                          f"{max(d.peak_rss_mib for d in ok):.0f}",
                          _servers(ok))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=200)
    variants: list[Variant] = args.variant or [parse_variant("ours=src")]
    sinks = [s for s in args.sinks.split(",") if s]
    settings = load_settings()
    run_id = "b" + datetime.now(UTC).strftime("%m%d%H%M") + uuid.uuid4().hex[:4]
    ws = Workspace(settings, run_id)
    kafka = Kafka(settings)
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / f"logs-{run_id}"
    drains: list[Drain] = []
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    servers = server_pids(settings.stack.resolved_home())
    try:
        starts, ends = record_backlog(ws, kafka, args.events, log_dir, console)
        for rep in range(args.reps):
            for sink in sinks:
                for variant in variants:
                    drain = drain_once(ws, kafka, sink, variant, rep, starts, ends, log_dir,
                                       servers)
                    drains.append(drain)
                    console.print(f"  rep {rep + 1} {sink:6} {variant.label:10} "
                                  f"{drain.records:,} records in "
                                  f"{drain.seconds or float('nan'):.1f}s = "
                                  f"{drain.rate:,.0f}/s, CPU {drain.cpu_s:.1f}s, "
                                  f"servers {drain.server_cpu_s}"
                                  + (f"  PROBLEMS {drain.problems}" if drain.problems else ""))
    finally:
        ws.cleanup()
    console.print(summarise(drains, variants, sinks))
    result: dict[str, Any] = {
        "run": run_id, "events": args.events,
        "load": {"start": load_start, "end": Path("/proc/loadavg").read_text().split()[:3]},
        "variants": [{"label": v.label, "src": str(v.src), "args": list(v.args)}
                     for v in variants],
        "drains": [{**d.__dict__, "rate": d.rate} for d in drains],
        "cleanup_problems": ws.problems,
    }
    path = args.out / f"backlog-{run_id}.json"
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written {path}")
    return 1 if any(d.problems for d in drains) else 0


if __name__ == "__main__":
    raise SystemExit(main())
