"""``python -m bench.pipeline.report [RESULT.json ...]``: medians over pipeline (and API) runs
as the Markdown tables of docs/benchmarks.md. Without arguments: every non-quick result in
bench/results. Each cell is the median over the runs that have it; ``n`` says how many."""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.pipeline.run import RESULTS_DIR

Doc = dict[str, Any]


def _median(values: Sequence[float | None]) -> float | None:
    found = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(found) if found else None


def _censored_median(values: Sequence[float | None]) -> float | None:
    """Median where ``None`` is a censored value (beyond what was observed: slower than every
    measured one); ``None`` when the median itself is censored. Taken per percentile, it keeps
    p50 <= p95 <= p99 because each run's own percentiles are ordered."""
    if not values:
        return None
    middle = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(middle) else middle


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _ms(value: float | None) -> str:
    if value is None:
        return "> end"
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"


def _phase(docs: Sequence[Doc], label: str) -> list[Doc]:
    return [p for d in docs for p in d["phases"] if p["label"] == label]


def _over(phases: Sequence[Doc], get: Callable[[Doc], float | None]) -> float | None:
    return _median([get(p) for p in phases])


def pipeline_markdown(docs: Sequence[Doc]) -> str:
    lines = [f"Medians of {len(docs)} run(s): "
             + ", ".join(f"`{d['run_id']}` (load {d['machine']['loadavg_start'][0]:.1f}→"
                         f"{d['machine'].get('loadavg_end', [math.nan])[0]:.1f})"
                         for d in docs) + ".", ""]
    lines += ["| workers | events/s end to end | simulator acked/s | e2e / simulator | "
              "peak RSS per process | CPU s per process (drain) |",
              "| --- | ---: | ---: | ---: | --- | --- |"]
    for label, mode in (("full", "worker all"), ("fullsep", "one process per sink")):
        phases = [p for p in _phase(docs, label) if p["end_to_end_s"]]
        if not phases:
            continue
        names = [w["process"] for w in phases[0]["workers"]]
        rss = [_median([p["workers"][i]["peak_rss_mib"] for p in phases])
               for i in range(len(names))]
        cpu = [_median([p["workers"][i]["cpu_s_drain"] for p in phases])
               for i in range(len(names))]
        short = [n.removeprefix("worker ") for n in names]
        rss_text = ", ".join(f"{n} {_fmt(r)} MiB" for n, r in zip(short, rss, strict=True))
        cpu_text = ", ".join(f"{n} {_fmt(c, digits=1)}" for n, c in zip(short, cpu, strict=True))
        lines.append(
            f"| {mode} | **{_fmt(_over(phases, lambda p: p['end_to_end_rate']))}** "
            f"| {_fmt(_over(phases, lambda p: p['simulator']['acked_rate']))} "
            f"| **{_fmt(_over(phases, lambda p: p['ratio_to_simulator']), digits=3)}** "
            f"| {rss_text} | {cpu_text} |")
    raw = {(b["store"]): b for d in docs for b in d["baselines"] if b["kind"] == "raw"}
    naive_rates = {s: _median([b["rate"] for d in docs for b in d["baselines"]
                               if b["kind"] == "naive" and b["store"] == s])
                   for s in ("postgres", "redis")}
    raw_rates = {s: _median([b["rate"] for d in docs for b in d["baselines"]
                             if b["kind"] == "raw" and b["store"] == s]) for s in raw}
    full, sep = _phase(docs, "full"), _phase(docs, "fullsep")
    lines += ["", "| sink | records read | events applied | lag 0 after (s) | ours, worker all "
              "(events/s) | ours, own process | naive | raw client | ours / raw | "
              "ours / naive |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
              "---: | ---: |"]
    for sink in ("postgres", "mongo", "redis", "audit"):
        key = "records_per_s" if sink == "audit" else "events_per_s"
        def field(name: str, phases: Sequence[Doc], sink: str = sink) -> float | None:
            return _median([p["sinks"][sink][name] or None for p in phases])

        ours, own = field(key, full), field(key, sep)
        secs = field("seconds", full)
        r, n = raw_rates.get(sink), naive_rates.get(sink)
        lines.append(
            f"| {sink}{' (records/s)' if sink == 'audit' else ''} "
            f"| {_fmt(field('records', full))} | {_fmt(field('events', full))} "
            f"| {_fmt(secs, digits=1)} | {_fmt(ours)} | {_fmt(own)} | {_fmt(n)} | {_fmt(r)} "
            f"| {_fmt(ours / r if ours and r else None, digits=3)} "
            f"| {_fmt(ours / n if ours and n else None, digits=1)} |")
    lines += ["", "| open-loop rate | events | p50 | p95 | p99 | max | no receipt | p99 "
              "PostgreSQL | p99 FerretDB | p99 Redis | every group at lag 0 |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    rates = sorted({p["rate"] for d in docs for p in d["phases"] if p["rate"]})
    for rate in rates:
        phases = [p for d in docs for p in d["phases"] if p["rate"] == rate and p["freshness"]]

        def fresh(key: str, ph: Sequence[Doc] = phases) -> float | None:
            return _censored_median([p["freshness"][key] for p in ph])

        def sink_p99(sink: str, ph: Sequence[Doc] = phases) -> float | None:
            return _censored_median([p["freshness_by_sink"].get(sink, {}).get("p99_s")
                                     for p in ph])

        drained = sum(1 for p in phases if p["end_to_end_s"])
        lines.append(
            f"| {rate:,.0f}/s | {_fmt(_median([p['published'] for p in phases]))} "
            f"| {_ms(fresh('p50_s'))} | {_ms(fresh('p95_s'))} | **{_ms(fresh('p99_s'))}** "
            f"| {_ms(fresh('max_s'))} "
            f"| {_fmt(_median([p['freshness']['missing'] for p in phases]))} "
            f"| {_ms(sink_p99('postgres'))} | {_ms(sink_p99('mongo'))} | {_ms(sink_p99('redis'))} "
            f"| {drained} of {len(phases)} runs |")
    return "\n".join(lines)


def api_markdown(docs: Sequence[Doc]) -> str:
    lines = [f"Medians of {len(docs)} run(s): " + ", ".join(f"`{d['run_id']}`" for d in docs)
             + ".", "", "| uvicorn workers | command | accepted/s (closed loop) | of /healthz "
             "| p50 / p99 closed | open loop 1,000/s p50 / p99 | API CPU |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    counts = sorted({r["workers"] for d in docs for r in d["runs"]})
    for workers in counts:
        runs = [r for d in docs for r in d["runs"] if r["workers"] == workers]
        # Every endpoint the runs measured (`--endpoints`), in the order they were measured.
        for endpoint in dict.fromkeys(c["endpoint"] for r in runs for c in r["closed"]):
            closed = [c for r in runs for c in r["closed"] if c["endpoint"] == endpoint]
            opened = [o for r in runs for o in r["open"] if o["endpoint"] == endpoint]
            ratio = _median([c.get("of_healthz") for c in closed])
            cpu = _median([c["api_cpu_s"] / c["seconds"] for c in closed if c["seconds"]])
            open_text = (f"{_fmt(_median([o['p50_ms'] for o in opened]), ' ms', 1)} / "
                         f"{_fmt(_median([o['p99_ms'] for o in opened]), ' ms', 1)}"
                         if opened else "-")
            lines.append(
                f"| {workers} | {endpoint} | {_fmt(_median([c['rate'] for c in closed]))} "
                f"| {_fmt(ratio, digits=2)} "
                f"| {_fmt(_median([c['p50_ms'] for c in closed]), ' ms', 1)} / "
                f"{_fmt(_median([c['p99_ms'] for c in closed]), ' ms', 1)} "
                f"| {open_text} | {_fmt(cpu * 100 if cpu is not None else None, ' %')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(a) for a in args] or sorted(RESULTS_DIR.glob("*.json"))
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    pipeline = [d for d in docs if d.get("suite") == "polystream bench pipeline"
                and not d["quick"]]
    api = [d for d in docs if d.get("suite") == "polystream bench api" and not d["quick"]]
    if not pipeline and not api:
        print("no pipeline or API result given (or found in bench/results)", file=sys.stderr)
        return 1
    if pipeline:
        print(pipeline_markdown(pipeline))
    if api:
        print()
        print(api_markdown(api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
