"""``python -m bench.pipeline`` (or ``polystream bench pipeline``): the whole pipeline, measured.

    python -m bench.pipeline [--quick] [--events N] [--rates 1000,2000,5000] [--duration S]
                             [--no-per-sink] [--out DIR]

Phases, each on fresh stores and fresh consumer groups (see ``isolation.py``):

1. full speed: ``polystream simulate --seed 7 --events N --rate 0`` while
   ``polystream worker all`` drains; the clock runs from the first record's produce time until
   every consumer group has committed everything;
2. raw and naive baselines on the same events (``baselines.py``);
3. the same full-speed run with one ``polystream worker <sink>`` process per sink;
4. open loop at each rate for ``--duration`` seconds: freshness from each event's scheduled
   send time to the last receipt of the stores that consume it.

Exit status 0 when every phase drained and passed its checks, 1 otherwise (the JSON is
written either way), 2 for bad arguments, 3 when workers of the default consumer groups are
running (their stores would receive the benchmark's events).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.pipeline import baselines
from bench.pipeline.isolation import Workspace
from bench.pipeline.kafka_offsets import Kafka
from bench.pipeline.phase import PhaseResult, PhaseSpec, log_dir_for, run_phase
from bench.pipeline.stream import STORE_SINKS, events
from polystream.domain.events import Sink
from polystream.settings import Settings, load_settings

RESULTS_DIR: Final = Path(__file__).resolve().parents[1] / "results"
SINKS: Final = [s.value for s in Sink]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="10,000 events, one open-loop rate (1,000/s) for 4 s, no per-sink "
                        "variant, short naive runs (the smoke test)")
    parser.add_argument("--events", type=int, default=None,
                        help="events of the full-speed phases (default 100,000)")
    parser.add_argument("--rates", default=None,
                        help="open-loop rates, events/s, comma-separated (default "
                        "1000,2000,5000); empty = none")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of schedule per open-loop rate (default 30)")
    parser.add_argument("--drain-cap", type=float, default=None,
                        help="longest wait for lag 0 after a full-speed publish (default 300)")
    parser.add_argument("--open-drain-cap", type=float, default=None,
                        help="longest wait for lag 0 after an open-loop publish (default 15); "
                        "events without every receipt by then count as slower than all")
    parser.add_argument("--naive-seconds", type=float, default=None,
                        help="time given to each naive consumer (default 10)")
    parser.add_argument("--no-per-sink", action="store_true",
                        help="skip the variant with one worker process per sink")
    parser.add_argument("--no-baselines", action="store_true", help="skip raw and naive")
    parser.add_argument("--allow-running-workers", action="store_true",
                        help="run even though workers of the default groups are running")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="folder for the JSON result (default bench/results)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.events = args.events or (10_000 if quick else 100_000)
    rates = args.rates if args.rates is not None else ("1000" if quick else "1000,2000,5000")
    try:
        args.rates = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers")
    if any(r <= 0 for r in args.rates) or args.events < 1:
        parser.error("rates and events must be positive")
    args.duration = args.duration or (4.0 if quick else 30.0)
    args.drain_cap = args.drain_cap or (90.0 if quick else 300.0)
    args.open_drain_cap = args.open_drain_cap or (10.0 if quick else 15.0)
    args.naive_seconds = args.naive_seconds or (2.0 if quick else 10.0)
    args.per_sink = not (args.no_per_sink or quick)
    return args


def specs(args: argparse.Namespace) -> list[PhaseSpec]:
    out = [PhaseSpec("full", "all", events=args.events, drain_cap_s=args.drain_cap)]
    if args.per_sink:
        out.append(PhaseSpec("fullsep", "per-sink", events=args.events,
                             drain_cap_s=args.drain_cap))
    out += [PhaseSpec(f"open{int(rate)}", "all", rate=rate, duration_s=args.duration,
                      drain_cap_s=args.open_drain_cap) for rate in args.rates]
    return out


def run_baselines(ws: Workspace, full: PhaseResult, budget_s: float,
                  progress: Any) -> list[baselines.Measured]:
    if not full.published or not full.starts:
        return []
    stream = events(full.published)
    out: list[baselines.Measured] = []
    steps: list[tuple[str, Callable[[], baselines.Measured]]] = [
        ("raw postgres", lambda: baselines.raw_postgres(ws, stream)),
        ("raw redis", lambda: baselines.raw_redis(ws, stream, _db(ws))),
        ("raw mongo", lambda: baselines.raw_mongo(ws, stream)),
        ("raw opensearch", lambda: baselines.raw_opensearch(ws, stream)),
        ("naive postgres",
         lambda: baselines.naive_postgres(ws, full.starts, full.ends, budget_s)),
        ("naive redis",
         lambda: baselines.naive_redis(ws, full.starts, full.ends, budget_s, _db(ws))),
    ]
    for label, step in steps:
        try:
            measured = step()
        except Exception as exc:
            measured = baselines.Measured(label.split()[1], label.split()[0],
                                          problems=[f"{type(exc).__name__}: {exc}"])
        flag = f" [red]{escape('; '.join(measured.problems))}[/]" if measured.problems else ""
        progress(f"  {label}: {measured.rate:,.0f} events/s ({measured.events:,} in "
                 f"{measured.seconds:.2f}s){flag}")
        out.append(measured)
    return out


def _db(ws: Workspace) -> int:
    if ws.redis_db is None:
        raise RuntimeError("no Redis database claimed")
    return ws.redis_db


def default_groups_in_use(kafka: Kafka, settings: Settings) -> dict[str, int]:
    groups = [settings.kafka.consumer_group(s) for s in SINKS]
    return {g: n for g, n in kafka.active_members(groups).items() if n}


def main(argv: Sequence[str] | None = None) -> int:
    from bench.run import git_state, machine, server_versions

    args = parse_args(argv)
    console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
    settings = load_settings()
    run_id = f"p{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    kafka = Kafka(settings)
    busy = default_groups_in_use(kafka, settings)
    if busy and not args.allow_running_workers:
        console.print(f"[red]workers of the default consumer groups are running ({busy}): the "
                      "benchmark publishes simulated events to the shared topics, and they "
                      "would write them into your stores. Stop them, or pass "
                      "--allow-running-workers.[/]")
        return 3
    info = machine()
    versions = server_versions(settings, ["kafka", "postgres", "redis", "ferretdb",
                                          "opensearch"])
    console.print(f"[bold]polystream bench pipeline[/] {'(quick) ' if args.quick else ''}"
                  f"run {run_id}; {info['cpus']} CPUs, load {info['loadavg_start']}")
    ws = Workspace(settings, run_id)
    log_dir = log_dir_for(args.out, run_id)
    phases: list[PhaseResult] = []
    measured: list[baselines.Measured] = []
    try:
        for spec in specs(args):
            console.print(f"[bold]{spec.label}[/]: {spec.mode}, "
                          + (f"{spec.rate:,.0f} events/s for {spec.duration_s:g}s"
                             if spec.rate else f"{spec.planned:,} events at full speed"))
            result = run_phase(ws, kafka, spec, log_dir, console.print)
            phases.append(result)
            console.print(f"  {_phase_line(result)}")
            for problem in result.problems:
                console.print(f"  [red]{escape(problem)}[/]")
            for note in result.notes:
                console.print(f"  [yellow]{escape(note)}[/]")
            if spec.label == "full" and not args.no_baselines:
                measured = run_baselines(ws, result, args.naive_seconds, console.print)
    finally:
        ws.cleanup()
    info["loadavg_end"] = list(os.getloadavg())
    document = {
        "suite": "polystream bench pipeline",
        "run_id": run_id,
        "started_at": started.isoformat(),
        "duration_s": time.perf_counter() - t0,
        "quick": args.quick,
        "command": " ".join(["python -m bench.pipeline",
                             *(sys.argv[1:] if argv is None else argv)]),
        "machine": info,
        "git": git_state(),
        "servers": versions,
        "settings": {"events": args.events, "rates": args.rates, "duration_s": args.duration,
                     "drain_cap_s": args.drain_cap, "open_drain_cap_s": args.open_drain_cap,
                     "naive_seconds": args.naive_seconds, "seed": 7},
        "phases": [p.to_json() for p in phases],
        "baselines": [m.to_json() for m in measured],
        "cleanup_problems": ws.problems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pipeline-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n",
                    encoding="utf-8")
    width = None if sys.stdout.isatty() else 160
    out = Console(highlight=False, width=width)
    for table in tables(document):
        out.print(table)
    console.print(f"pipeline bench in {document['duration_s']:.0f}s; results in {path}")
    failed = [p["label"] for p in document["phases"] if not p["ok"]]
    failed += [f"{m['kind']} {m['store']}" for m in document["baselines"] if m["problems"]]
    if ws.problems:
        console.print(f"[yellow]{escape('; '.join(ws.problems))}[/]")
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/]")
        return 1
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _phase_line(result: PhaseResult) -> str:
    sim = result.sim
    e2e = (f"end to end {result.end_to_end_rate:,.0f} events/s "
           f"({result.published:,} in {result.all_drained_s:.1f}s)"
           if result.all_drained_s else "not drained")
    text = f"simulator {sim.acked_rate:,.0f}/s; {e2e}" if sim else e2e
    if result.freshness is not None:
        f = result.freshness
        text += (f"; freshness p50 {_s(f.p50_s)} p95 {_s(f.p95_s)} p99 {_s(f.p99_s)}"
                 f" ({f.missing:,} of {f.events:,} without every receipt)")
    return text


def _s(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "> end"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _rate(value: float | None) -> str:
    return "-" if not value else f"{value:,.0f}"


def tables(document: dict[str, Any]) -> list[Table]:
    phases = document["phases"]
    raw = {m["store"]: m for m in document["baselines"] if m["kind"] == "raw"}
    naive = {m["store"]: m for m in document["baselines"] if m["kind"] == "naive"}
    full = [p for p in phases if not p["rate"]]
    opened = [p for p in phases if p["rate"]]

    e2e = Table(title="pipeline end to end at full speed (simulator → Kafka → every sink "
                "at lag 0)")
    for col in ("workers", "events", "simulator acked/s", "end to end", "events/s",
                "e2e / simulator", "process", "peak RSS", "CPU s (drain)", "checks"):
        e2e.add_column(col, justify="left" if col in ("workers", "process", "checks")
                       else "right")
    for p in full:
        sim = p["simulator"] or {}
        for i, w in enumerate(p["workers"] or [{}]):
            first = i == 0
            e2e.add_row(
                p["mode"] if first else "",
                f"{p['published']:,}" if first else "",
                _rate(sim.get("acked_rate")) if first else "",
                (f"{p['end_to_end_s']:.1f} s" if p["end_to_end_s"] else "not drained")
                if first else "",
                _rate(p["end_to_end_rate"]) if first else "",
                (f"{p['ratio_to_simulator']:.2f}" if p["ratio_to_simulator"] else "-")
                if first else "",
                w.get("process", "-"),
                f"{w.get('peak_rss_mib', 0):,.0f} MiB" + (
                    f" ({w['processes']} proc, {w.get('tree_peak_rss_mib', 0):,.0f} total)"
                    if w.get("processes", 1) > 1 else ""),
                f"{w.get('cpu_s_drain', 0):.1f}",
                ("[green]ok[/]" if p["ok"] else f"[red]{escape('; '.join(p['problems'])[:80])}[/]")
                if first else "",
            )
        e2e.add_section()

    sinks = Table(title="per sink at full speed: ours (the pipeline) vs naive vs raw client, "
                  "events the store applies per second")
    for col in ("sink", "records read", "events applied", "lag 0 after", "ours (all)",
                "ours (per-sink)", "naive", "raw", "ours / raw", "ours / naive"):
        sinks.add_column(col, justify="left" if col == "sink" else "right")
    by_mode = {p["mode"]: p for p in full}
    base = by_mode.get("all") or (full[0] if full else None)
    for sink in SINKS:
        if base is None:
            break
        d = base["sinks"].get(sink, {})
        sep = by_mode.get("per-sink", {}).get("sinks", {}).get(sink, {})
        ours = d.get("events_per_s") if sink != "audit" else d.get("records_per_s")
        store = sink
        r = raw.get(store, {}).get("rate")
        n = naive.get(store, {}).get("rate")
        sinks.add_row(
            sink + (" (records)" if sink == "audit" else ""),
            f"{d.get('records', 0):,}",
            f"{d.get('events', 0):,}",
            f"{d['seconds']:.1f} s" if d.get("seconds") else "-",
            _rate(ours),
            _rate(sep.get("events_per_s") if sink != "audit" else sep.get("records_per_s")),
            _rate(n),
            _rate(r),
            f"{ours / r:.2f}" if ours and r else "-",
            f"{ours / n:.1f}" if ours and n else "-",
        )

    fresh = Table(title="open loop: freshness = scheduled send → receipt of every store that "
                  "consumes the event (no coordinated omission)")
    for col in ("rate", "events", "simulator max lag", "p50", "p95", "p99", "max",
                "no receipt", "p99 postgres", "p99 mongo", "p99 redis", "drained", "peak RSS"):
        fresh.add_column(col, justify="right")
    for p in opened:
        f = p["freshness"] or {}
        by = p["freshness_by_sink"]
        sim = p["simulator"] or {}
        fresh.add_row(
            f"{p['rate']:,.0f}/s",
            f"{p['published']:,}",
            f"{sim.get('max_lag_s', 0):.2f} s",
            _s(f.get("p50_s")), _s(f.get("p95_s")), _s(f.get("p99_s")), _s(f.get("max_s")),
            f"{f.get('missing', 0):,}",
            *(_s(by.get(s.value, {}).get("p99_s")) for s in STORE_SINKS),
            (f"{p['end_to_end_s']:.1f} s" if p["end_to_end_s"] else "[red]no[/]"),
            f"{max((w['peak_rss_mib'] for w in p['workers']), default=0):,.0f} MiB",
        )
    return [e2e, sinks, fresh]


if __name__ == "__main__":
    sys.exit(main())
