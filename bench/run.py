"""``python -m bench.run``: run the suite, print the table, write ``bench/results/<ts>.json``.

    python -m bench.run [--quick] [--only NAME ...] [--reps N] [--out DIR]

Exit status 0 when every selected benchmark ran and passed its checks, 1 otherwise (the JSON
is written either way), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
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

from bench.core import Benchmark, BenchResult, run_benchmark
from polystream.settings import Settings, load_settings

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
DEFAULT_REPS: Final = 5
QUICK_REPS: Final = 3

Factory = Callable[[Settings, str, bool], Benchmark]


def _codec(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_codec import CodecBench

    return CodecBench(quick)


def _shred(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_shred import ShredBench

    return ShredBench(quick)


def _kafka(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_kafka import KafkaBench

    return KafkaBench(settings, run_id, quick)


def _postgres(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_postgres import PostgresBench

    return PostgresBench(settings, run_id, quick)


def _redis(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_redis import RedisBench

    return RedisBench(settings, run_id, quick)


def _mongo(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_mongo import MongoBench

    return MongoBench(settings, run_id, quick)


def _audit(settings: Settings, run_id: str, quick: bool) -> Benchmark:
    from bench.b_audit import AuditBench

    return AuditBench(settings, run_id, quick)


#: In the order they run (and appear in the table).
BENCHMARKS: Final[dict[str, Factory]] = {
    "codec": _codec,
    "shred": _shred,
    "kafka": _kafka,
    "postgres": _postgres,
    "redis": _redis,
    "mongo": _mongo,
    "audit": _audit,
}

#: Which server each benchmark needs (its version goes into the JSON).
SERVERS: Final[dict[str, str]] = {
    "kafka": "kafka",
    "postgres": "postgres",
    "redis": "redis",
    "mongo": "ferretdb",
    "audit": "opensearch",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="polystream components against raw-client baselines on the real stack.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes and 3 repetitions (the smoke test uses this)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"repetitions per variant (default {DEFAULT_REPS}, {QUICK_REPS} with --quick)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="folder for the JSON result (default bench/results)",
    )
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
    }


def git_state() -> dict[str, Any]:
    """The commit measured and whether the working tree had local changes (read-only git)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(changed) if commit else None}


def server_versions(settings: Settings, names: Sequence[str]) -> dict[str, str]:
    """Each needed server's version, through the stack's own probes (read-only requests)."""
    from polystream.stack.manager import Stack

    servers = Stack(settings).servers
    versions: dict[str, str] = {}
    for name in names:
        server = servers.get(name)
        if server is None:
            versions[name] = "disabled"
            continue
        health = server.health()
        versions[name] = health.version if health.healthy else f"DOWN: {health.detail}"
    return versions


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}"


def table(results: Sequence[BenchResult]) -> Table:
    out = Table(title="polystream vs raw-client baselines (medians of interleaved repetitions)")
    out.add_column("benchmark")
    out.add_column("n / rep", justify="right")
    out.add_column("variant")
    out.add_column("median", justify="right")
    out.add_column("unit")
    out.add_column("spread", justify="right")
    out.add_column("CPU bench/all", justify="right")
    out.add_column("ours / baseline", justify="right")
    out.add_column("paired", justify="right")
    out.add_column("checks")
    for result in results:
        n = next(iter(result.size.values()), "")
        first = True
        if result.error is not None and not result.variants:
            out.add_row(
                result.name,
                str(n),
                "-",
                "-",
                result.unit,
                "-",
                "-",
                "-",
                "-",
                f"[red]{escape(result.error)}[/]",
            )
            continue
        for variant in result.variants:
            ratio = paired = ""
            if variant.role == "ours":
                paired = f"{result.paired_ratio:.2f}" if result.paired_ratio is not None else "-"
                ratio = f"{result.ratio:.2f}" if result.ratio is not None else "-"
            elif variant.role == "reference":
                ours = result.variant("ours")
                if ours is not None and variant.median > 0:
                    ratio = f"[dim]({ours.median / variant.median:.2f})[/]"
            checks = ""
            if first:
                checks = (
                    "[green]ok[/]"
                    if result.ok
                    else f"[red]{escape(result.error or '; '.join(result.problems[:2]))}[/]"
                )
            out.add_row(
                result.name if first else "",
                f"{n:,}" if first and isinstance(n, int) else "",
                variant.name,
                _rate(variant.median),
                result.unit,
                f"±{variant.spread / 2:.0%}",
                f"{variant.cpu_share:.0%} / {variant.machine_cpu_share:.0%}",
                ratio,
                paired,
                checks,
            )
            first = False
        out.add_section()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True, highlight=False)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    settings = load_settings()
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}{uuid.uuid4().hex[:6]}"
    started = datetime.now(UTC)
    t0 = time.perf_counter()

    info = machine()
    needed = [SERVERS[name] for name in names if name in SERVERS]
    versions = server_versions(settings, needed) if needed else {}
    console.print(
        f"[bold]polystream bench[/] {'(quick) ' if args.quick else ''}"
        f"run {run_id}: {', '.join(names)}; {reps} repetitions each"
    )
    console.print(f"  {info['cpus']} CPUs ({info['cpu_model']}), load {info['loadavg_start']}")
    for server, version in versions.items():
        console.print(f"  {server}: {escape(version)}")

    results: list[BenchResult] = []
    for name in names:
        bench = BENCHMARKS[name](settings, run_id, args.quick)
        console.print(f"[bold]{bench.title}[/] ({escape(str(bench.size()))})")
        result = run_benchmark(bench, reps, console.print)
        console.print(f"  done in {result.seconds:.1f}s")
        results.append(result)

    info["loadavg_end"] = list(os.getloadavg())
    finished = datetime.now(UTC)
    document = {
        "suite": "polystream bench",
        "run_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": time.perf_counter() - t0,
        "quick": args.quick,
        "reps": reps,
        "command": " ".join(
            [
                Path(sys.executable).name,
                "-m",
                "bench.run",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
        "machine": info,
        "git": git_state(),
        "servers": versions,
        "benchmarks": [result.to_json() for result in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    width = None if sys.stdout.isatty() else 150
    Console(highlight=False, width=width).print(table(results))
    console.print(
        f"{len(results)} benchmark(s) in {document['duration_s']:.0f}s; results in {path}"
    )
    failed = [result.name for result in results if not result.ok]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
