"""``python -m bench.api`` (or ``polystream bench api``): the API under load.

    python -m bench.api [--quick] [--workers 1,2] [--seconds S] [--rate R] [--out DIR]
                        [--endpoints healthz,title,browse,trending,healthz]

For each uvicorn worker count, ``polystream api serve --workers N`` is started as users start
it, on its own port, with the run's own PostgreSQL database and Redis logical database. Then,
against that one process (tree):

* closed loop, ``wrk`` (2 threads, 32 connections; 8 for registrations): ``/healthz``, a
  heartbeat (``POST /playback/sessions/{id}/progress``), a rating
  (``PUT /titles/{t}/ratings/{u}``), a registration (``POST /users``: argon2id),
  ``/healthz`` again, then the public reads (``reads.py``): ``GET /titles/{id}`` (cached),
  ``GET /titles`` (cached pages and distinct, uncached queries), ``GET /rankings/trending``,
  and ``/healthz`` once more; accepted = 2xx answers;
* open loop at ``--rate`` (1,000/s) for ``/healthz``, the heartbeat and the rating, latency
  from each request's scheduled send time (registration is argon2id-bound far below that
  rate: its closed-loop maximum says how far).

Requests come from the simulator's events (``requests.py``); its first 20,000 events are
published first so that the users, titles and viewing sessions they name exist. The commands
the API accepts go to the shared topics (as every command does).

Exit status 0 when every measurement ran without errors, 1 otherwise (the JSON is written
either way), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.api.open_loop import OpenLoop, run_open_loop
from bench.api.reads import READ_ENDPOINTS, seed_stores
from bench.api.requests import ENDPOINTS, PREFIX, Call, with_tokens
from bench.api.wrk import CONNECTIONS, ClosedLoop, ensure_wrk, run_wrk
from bench.pipeline.isolation import Workspace
from bench.pipeline.procs import Worker, child_env, polystream_command, stop_workers
from bench.pipeline.stream import simulate
from polystream.api.login.store import LoginSession, RedisSessionStore
from polystream.api.login.tokens import new_token, token_digest
from polystream.settings import Settings, load_settings
from polystream.stores.redis_client import connect

RESULTS_DIR: Final = Path(__file__).resolve().parents[1] / "results"
HOST: Final = "127.0.0.1"
CLOSED: Final = ("healthz", "heartbeat", "rating", "registration", "healthz", "title", "browse",
                  "browse-uncached", "trending", "healthz")
OPEN: Final = ("healthz", "heartbeat", "rating")
ALL_CALLS: Final = {**ENDPOINTS, **READ_ENDPOINTS}
#: Measured with their cache filled (each distinct request asked once just before).
WARMED: Final = ("title", "browse")
#: Two argon2id threads per process saturate with a few clients; beyond the hashing threads plus
#: `api.hash_queue_max` (2 + 4 by default) sign-ups are shed with 503 by design, so the
#: benchmark stays below that to measure the hashing rate, not the shedding.
REGISTRATION_CONNECTIONS: Final = 4
#: Connections per endpoint where 32 would only queue requests: argon2id, and FerretDB, which
#: scans the collection for every uncached query (32 at once all miss the 1.5 s budget).
FEW_CONNECTIONS: Final = {"registration": REGISTRATION_CONNECTIONS, "browse-uncached": 4}
#: Pages stay cached through the whole run (the default TTL is 30 s; warming the pages on
#: FerretDB takes about that long on a loaded box). Uncached pages are measured apart.
READ_ENV: Final = {"POLYSTREAM_READS__BROWSE_CACHE_TTL_S": "600"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1-2 s per measurement, one worker count (the smoke test)")
    parser.add_argument("--workers", default=None, help="uvicorn worker counts (default 1,2)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="whole seconds per closed-loop measurement (default 6)")
    parser.add_argument("--open-seconds", type=float, default=None,
                        help="seconds per open-loop measurement (default 8)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="open-loop requests per second (default 1000)")
    parser.add_argument("--endpoints", default=None,
                        help="closed-loop endpoints in order (default: "
                        f"{','.join(CLOSED)}); the open loop keeps those of {','.join(OPEN)}")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.endpoints = [e.strip() for e in (args.endpoints or ",".join(CLOSED)).split(",")
                      if e.strip()]
    unknown = sorted(set(args.endpoints) - set(ALL_CALLS))
    if unknown:
        parser.error(f"--endpoints: unknown {', '.join(unknown)}; known: "
                     f"{', '.join(ALL_CALLS)}")
    workers = args.workers or ("1" if args.quick else "1,2")
    try:
        args.workers = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--workers: comma-separated integers")
    if not args.workers or any(w < 1 for w in args.workers) or args.rate <= 0:
        parser.error("worker counts and the rate must be positive")
    args.seconds = args.seconds or (1.0 if args.quick else 6.0)
    args.open_seconds = args.open_seconds or (1.5 if args.quick else 8.0)
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return int(answer.status)


@contextlib.contextmanager
def api_process(workers: int, env: dict[str, str], log_path: Path) -> Iterator[
        tuple[Worker, int]]:
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*polystream_command(), "api", "serve", "--host", HOST, "--port", str(port),
             "--workers", str(workers)],
            env=child_env(env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    api = Worker(f"api --workers {workers}", proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"api exited {proc.returncode}:\n{api.log_tail()}")
            with contextlib.suppress(OSError):
                if _get(f"http://{HOST}:{port}/healthz") == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"api not answering after 60s:\n{api.log_tail()}")
            time.sleep(0.2)
        # Every uvicorn worker up (they start one by one after the first answers).
        time.sleep(1.0 if workers > 1 else 0.2)
        yield api, port
    finally:
        stop_workers([api], timeout_s=30)


def warm(base: str, calls: Sequence[Call]) -> None:
    """Ask every distinct request once, so that the measurement sees the cache filled."""
    def one(call: Call) -> None:
        for _ in range(3):  # a 503 (the store over its budget on a loaded box) is retried
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + call.path, timeout=30).close()
                return

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, calls))


def settle(api: Worker, timeout_s: float = 20.0) -> float:
    """Wait until the API is idle (under 5 % of a core for half a second): a closed-loop run
    leaves accepted requests behind (registrations queue for argon2id), which must not land
    in the next measurement. Returns the seconds waited."""
    t0 = time.monotonic()
    last = api.sample().cpu_s
    while time.monotonic() - t0 < timeout_s:
        time.sleep(0.5)
        now = api.sample().cpu_s
        if now - last < 0.025:
            break
        last = now
    return time.monotonic() - t0


def open_sessions(settings: Settings, calls: dict[str, list[Call]]) -> dict[str, str]:
    """A login session per user the requests act for, in the phase's Redis; user -> token."""
    users = sorted({c.user_id for cs in calls.values() for c in cs if c.user_id})
    client = connect(settings.redis.url)
    try:
        store = RedisSessionStore(client, settings.redis.key_prefix)
        tokens = {}
        for user_id in users:
            token = new_token()
            store.create(token_digest(token), LoginSession(str(uuid.uuid4()), user_id, "user",
                                                           0.0), settings.api.session_ttl_s)
            tokens[user_id] = token
        return tokens
    finally:
        client.close()


def measure(workers: int, env: dict[str, str], args: argparse.Namespace, log_dir: Path,
            run: str, progress: Any, settings: Settings) -> dict[str, Any]:
    calls = {name: ALL_CALLS[name]() for name in dict.fromkeys(args.endpoints)}
    tokens = open_sessions(settings, calls)
    calls = {name: with_tokens(cs, tokens) for name, cs in calls.items()}
    closed: list[ClosedLoop] = []
    opened: list[OpenLoop] = []
    out: dict[str, Any] = {"workers": workers}
    with api_process(workers, env, log_dir / f"api-{workers}.log") as (api, port):
        base = f"http://{HOST}:{port}"
        # Warm-up: the first requests load routes, connect to Kafka and Redis.
        run_wrk("warm-up", calls.get("heartbeat", calls[args.endpoints[0]]), base, 1, run,
                connections=4)
        for name in args.endpoints:
            if name in WARMED:
                warm(base, calls[name])
            settle(api)
            cpu0 = api.sample().cpu_s
            result = run_wrk(name, calls[name], base, args.seconds, run,
                             connections=FEW_CONNECTIONS.get(name, CONNECTIONS))
            result.api_cpu_s = api.sample().cpu_s - cpu0
            closed.append(result)
            progress(f"  workers={workers} closed {name:<12} {result.rate:>8,.0f}/s "
                     f"p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms"
                     + (f" [red]{escape('; '.join(result.problems))}[/]"
                        if result.problems else ""))
        for name in (n for n in OPEN if n in calls):
            settle(api)
            cpu0 = api.sample().cpu_s
            loop = run_open_loop(name, calls[name], HOST, port, args.rate, args.open_seconds,
                                 run)
            loop.api_cpu_s = api.sample().cpu_s - cpu0
            opened.append(loop)
            progress(f"  workers={workers} open {args.rate:,.0f}/s {name:<12} "
                     f"p50 {loop.p50_ms:.1f} ms p99 {loop.p99_ms:.1f} ms max "
                     f"{loop.max_ms:.1f} ms (generator CPU {loop.generator_cpu_s:.1f}s, "
                     f"sent up to {loop.max_send_delay_ms:.0f} ms late)"
                     + (f" [red]{escape('; '.join(loop.problems))}[/]" if loop.problems else "")
                     + (f" [yellow]{escape('; '.join(loop.notes))}[/]" if loop.notes else ""))
        out["peak_rss_mib"] = round(api.peak_rss_mib, 1)
        out["log"] = str(api.log_path)
    health = [c.rate for c in closed if c.endpoint == "healthz" and c.rate]
    healthz = sum(health) / len(health) if health else 0.0
    out["healthz_rate"] = healthz
    out["closed"] = [{**c.to_json(), "of_healthz": c.rate / healthz if healthz else None}
                     for c in closed]
    out["open"] = [o.to_json() for o in opened]
    out["problems"] = [p for c in closed for p in c.problems] + [
        p for o in opened for p in o.problems]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from bench.run import git_state, machine

    args = parse_args(argv)
    console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
    settings = load_settings()
    run_id = f"a{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    ensure_wrk()
    info = machine()
    console.print(f"[bold]polystream bench api[/] {'(quick) ' if args.quick else ''}run "
                  f"{run_id}; load {info['loadavg_start']}")
    ws = Workspace(settings, run_id)
    log_dir = args.out / f"logs-{run_id}"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        names = ws.phase("api")
        env = {**names.env(), **READ_ENV}
        sim = simulate(env, events=PREFIX)
        problems += sim.problems
        console.print(f"  published the simulator's first {sim.sent:,} events (users, titles, "
                      "viewing sessions the requests name)")
        seeded = seed_stores(names.settings(settings))
        console.print(f"  applied {seeded['mongo']:,} of them to MongoDB and "
                      f"{seeded['redis']:,} to Redis (what the read endpoints serve)")
        for workers in args.workers:
            try:
                runs.append(measure(workers, env, args, log_dir, run_id, console.print,
                                    names.settings(settings)))
            except Exception as exc:
                problems.append(f"workers={workers}: {type(exc).__name__}: {exc}")
                console.print(f"[red]{escape(problems[-1])}[/]")
    finally:
        ws.cleanup()
    info["loadavg_end"] = list(os.getloadavg())
    document = {
        "suite": "polystream bench api",
        "run_id": run_id,
        "started_at": started.isoformat(),
        "duration_s": time.perf_counter() - t0,
        "quick": args.quick,
        "command": " ".join(["python -m bench.api", *(sys.argv[1:] if argv is None else argv)]),
        "machine": info,
        "git": git_state(),
        "settings": {"workers": args.workers, "endpoints": args.endpoints,
                     "closed_seconds": args.seconds,
                     "open_seconds": args.open_seconds, "rate": args.rate,
                     "connections": 32, "wrk_threads": 2},
        "runs": runs,
        "problems": problems + [p for r in runs for p in r["problems"]] + ws.problems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"api-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    width = None if sys.stdout.isatty() else 160
    Console(highlight=False, width=width).print(table(document))
    console.print(f"api bench in {document['duration_s']:.0f}s; results in {path}")
    if document["problems"]:
        console.print(f"[red]problems: {escape('; '.join(document['problems'][:5]))}[/]")
        return 1
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def table(document: dict[str, Any]) -> Table:
    rate = document["settings"]["rate"]
    out = Table(title="API: closed loop (wrk, 32 connections) next to /healthz of the "
                f"same process; open loop at {rate:,.0f}/s from scheduled send times")
    for col in ("workers", "endpoint", "accepted/s", "of /healthz", "p50 ms", "p99 ms",
                "API CPU", "open p50 ms", "open p99 ms", "open max ms", "not 2xx / lost"):
        out.add_column(col, justify="left" if col in ("workers", "endpoint") else "right")
    for run in document["runs"]:
        opened = {o["endpoint"]: o for o in run["open"]}
        seen: set[str] = set()
        for i, c in enumerate(run["closed"]):
            name = c["endpoint"]
            o = opened.get(name) if name not in seen else None
            seen.add(name)
            cpu = c["api_cpu_s"] / c["seconds"] if c["seconds"] else 0.0
            lost = "" if o is None else (
                f"{o['completed'] - o['accepted']:,} / {o['scheduled'] - o['completed']:,}")
            out.add_row(
                str(run["workers"]) if i == 0 else "",
                name,
                f"{c['rate']:,.0f}",
                f"{c['of_healthz']:.2f}" if c.get("of_healthz") else "-",
                _ms(c["p50_ms"]), _ms(c["p99_ms"]),
                f"{cpu:.0%}",
                _ms(o["p50_ms"]) if o else "", _ms(o["p99_ms"]) if o else "",
                _ms(o["max_ms"]) if o else "", lost,
            )
        out.add_section()
    return out


if __name__ == "__main__":
    sys.exit(main())
