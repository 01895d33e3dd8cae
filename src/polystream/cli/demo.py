"""`polystream demo`: watch the platform work. Embedded (one process, in-memory stores) by
default, or `--stack` on the real servers with each role in its own process.

Live mode (the default) serves the API with its `/dashboard` and feeds the simulator at a
steady rate until Ctrl-C (or `--duration`), then drains the sinks and prints a summary.
`--batch` pushes a fixed number of events as fast as possible and prints the same summary.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from polystream.bus.topology import Topic
from polystream.domain.events import Sink, decode
from polystream.embedded import EmbeddedPlatform
from polystream.settings import Settings, load_settings
from polystream.simulate import SimConfig, generate
from polystream.simulate.runner import RunReport, pump

console = Console()


def demo(
    events: Annotated[int | None, typer.Option(
        min=1, max=2_000_000, help="events to push through (batch: default 20,000; live: "
        "no limit)")] = None,
    rate: Annotated[float, typer.Option(min=1, max=100_000,
                                        help="live mode: simulated events per second")] = 200,
    duration: Annotated[float | None, typer.Option(
        min=1, help="live mode: stop after this many seconds instead of waiting for Ctrl-C")]
    = None,
    batch: Annotated[bool, typer.Option(
        "--batch", help="no server: push --events as fast as possible, print the summary")]
    = False,
    stack: Annotated[bool, typer.Option(
        "--stack", help="on the real servers (brought up if needed), one process per role")]
    = False,
    seed: Annotated[int | None, typer.Option(
        help="same seed, same stream (default: 7 embedded; a fresh one with --stack, so a "
        "second run adds new events instead of replaying the first)")] = None,
    users: Annotated[int, typer.Option(min=1)] = 500,
    titles: Annotated[int, typer.Option(min=1)] = 200,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="the API's port (default: POLYSTREAM_API__PORT)")] = None,
) -> None:
    """Simulate traffic through every sink and the auditor; watch it on the dashboard."""
    if seed is None:
        seed = secrets.randbelow(1_000_000) if stack else 7
    sim = SimConfig(seed=seed, users=users, titles=titles)
    if stack:
        from polystream.cli.demo_stack import run_stack_demo

        run_stack_demo(sim, rate=rate, duration_s=duration, events=events, port=port)
        return
    if batch:
        _batch(sim, events or 20_000)
        return
    _live(sim, rate=rate, duration_s=duration, events=events, port=port)


def with_operator_token(settings: Settings) -> tuple[Settings, str]:
    """The settings with an operator token: the configured one, or a fresh one for this run
    (the demo prints it inside the dashboard link)."""
    token = settings.api.operator_token.get_secret_value()
    if token:
        return settings, token
    token = secrets.token_urlsafe(18)
    api = settings.api.model_copy(update={"operator_token": SecretStr(token)})
    return settings.model_copy(update={"api": api}), token


def dashboard_link(host: str, port: int, token: str) -> str:
    # The token rides in the fragment: the browser never sends it to the server.
    return f"http://{host}:{port}/dashboard#token={token}"


class SimClock:
    """The simulated "now": the time of the last event published (the simulator runs days
    of platform life in minutes; the live rankings must be read at its time, not ours)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _live(sim: SimConfig, *, rate: float, duration_s: float | None, events: int | None,
          port: int | None) -> None:
    import uvicorn

    from polystream.api.app import create_app
    from polystream.api.deps import ApiDeps
    from polystream.bus.memory import InMemoryEventPublisher
    from polystream.observe.embedded import embedded_observatory

    settings, token = with_operator_token(load_settings())
    host, port = settings.api.host, port or settings.api.port
    platform = EmbeddedPlatform()
    platform.start()
    clock = SimClock()
    app = create_app(ApiDeps(
        settings=settings, publisher=InMemoryEventPublisher(platform.broker),
        receipts=platform.receipts, audit=platform.audit, source="api-embedded",
        observatory=embedded_observatory(platform, clock=clock)))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, name="api", daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not server.started and serving.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        platform.stop()
        console.print(f"[red]the API did not start on {host}:{port} (port in use?)[/]")
        raise typer.Exit(1)
    console.print(f"[bold]Dashboard:[/] {dashboard_link(host, port, token)}")
    console.print(f"API docs:  http://{host}:{port}/docs · simulating {rate:g} events/s "
                  f"(in memory) · Ctrl-C stops", highlight=False)

    def send(topic: str, key: str, value: bytes) -> None:
        platform.publisher.publish_fire(topic, key, value)
        clock.now = decode(value).occurred_at

    report = RunReport()
    # A service manager or `timeout` stops with SIGTERM: same orderly end as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        pump(generate(sim), send, report=report, rate=rate, duration_s=duration_s,
             events=events)
        if duration_s is None and events is None:
            _wait_forever()
    except KeyboardInterrupt:
        console.print("\nstopping: draining the sinks…")
    platform.publisher.flush()
    platform.wait_drained(timeout_s=60)
    server.should_exit = True
    serving.join(10)
    _report(platform, report.sent, report.elapsed_s, clock.now)
    platform.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_forever() -> None:
    while True:
        time.sleep(3600)


def _batch(sim: SimConfig, events: int) -> None:
    platform = EmbeddedPlatform()
    platform.start()
    stream = generate(sim, limit=events)
    last_value = b""
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}"
                  "/{task.total:,}"), TimeElapsedColumn(), console=console) as progress:
        pub = progress.add_task("publishing", total=events)
        for ev in stream:
            platform.publisher.publish_fire(ev.topic, ev.key, ev.value)
            last_value = ev.value
            progress.advance(pub)
        platform.publisher.flush()
        drain = progress.add_task("sinks draining", total=events)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            lag = platform.lag()
            done = events - min(events, max(lag[s] for s in (Sink.POSTGRES, Sink.MONGO,
                                                             Sink.REDIS)))
            progress.update(drain, completed=done)
            if platform.wait_drained(timeout_s=0.2):
                progress.update(drain, completed=events)
                break
    elapsed = time.perf_counter() - t0
    sim_now = decode(last_value).occurred_at if last_value else datetime.now(UTC)
    _report(platform, events, elapsed, sim_now)
    platform.stop()


def _report(p: EmbeddedPlatform, events: int, elapsed: float, sim_now: datetime) -> None:
    rate = events / elapsed if elapsed > 0 else 0.0
    t = Table("sink", "stored", "duplicate", "stale", "rejected", "dead-lettered", "deferred",
              title=f"{events:,} events through every sink in {elapsed:.1f}s "
                    f"({rate:,.0f} events/s, one process)")
    for sink, worker in p.workers.items():
        a = worker.totals.applied
        t.add_row(sink.value, *(f"{a.get(k, 0):,}" for k in (
            "stored", "duplicate", "stale", "rejected", "dead_lettered")), str(worker.deferred))
    console.print(t)

    dump = p.accounts.dump()
    stores = Table("store", "holds", title="What the stores hold")
    stores.add_row("PostgreSQL (accounts)", ", ".join(
        f"{name}: {len(rows):,}" for name, rows in dump.items() if name != "processed_events"))
    snap = p.catalog.snapshot()
    stores.add_row("MongoDB (catalog)", ", ".join(f"{k}: {len(v):,}" for k, v in snap.items()))
    stores.add_row("Redis (live)", f"active streams now: {p.live.active_streams_total(sim_now)}")
    stores.add_row("Audit index", f"documents: {p.audit.count():,}")
    dead = sum(p.broker.end_offsets(Topic.DEADLETTER.value).values())
    stores.add_row("Dead letters", f"{dead:,}")
    console.print(stores)

    top = Table("#", "title", "score", "votes", title="Top rated (Bayesian average)")
    for i, (title_id, score) in enumerate(p.live.top_rated(5), 1):
        doc = p.catalog.get_title(title_id) or {}
        count, _ = p.live.title_rating(title_id)
        top.add_row(str(i), str(doc.get("title", title_id)), f"{score:.2f}", str(count))
    console.print(top)
    trend = Table("#", "title", "score", title=f"Trending (7 days to {sim_now:%Y-%m-%d})")
    for i, (title_id, score) in enumerate(p.live.trending(5, now=sim_now), 1):
        doc = p.catalog.get_title(title_id) or {}
        trend.add_row(str(i), str(doc.get("title", title_id)), f"{score:.1f}")
    console.print(trend)
