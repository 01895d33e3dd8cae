"""`polystream demo`: the whole platform in one process (embedded mode), no server needed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from polystream.bus.topology import Topic
from polystream.domain.events import Sink, decode
from polystream.embedded import EmbeddedPlatform
from polystream.simulate import SimConfig, generate

console = Console()


def demo(
    events: Annotated[int, typer.Option(min=1, max=2_000_000,
                                        help="simulated events to push through")] = 20_000,
    seed: Annotated[int, typer.Option(help="same seed, same stream")] = 7,
    users: Annotated[int, typer.Option(min=1)] = 500,
    titles: Annotated[int, typer.Option(min=1)] = 200,
    serve: Annotated[bool, typer.Option(help="then keep serving the API on the same "
                                        "in-memory platform until Ctrl-C")] = False,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Simulate traffic, run every sink and the auditor on in-memory stores, show the result."""
    platform = EmbeddedPlatform()
    platform.start()
    stream = generate(SimConfig(seed=seed, users=users, titles=titles), limit=events)
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
    if serve:
        _serve(platform, port)
    platform.stop()


def _report(p: EmbeddedPlatform, events: int, elapsed: float, sim_now: datetime) -> None:
    t = Table("sink", "stored", "duplicate", "stale", "rejected", "dead-lettered", "deferred",
              title=f"{events:,} events through every sink in {elapsed:.1f}s "
                    f"({events / elapsed:,.0f} events/s, one process)")
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


def _serve(p: EmbeddedPlatform, port: int) -> None:
    import uvicorn

    from polystream.api.app import create_app
    from polystream.api.deps import ApiDeps
    from polystream.bus.memory import InMemoryEventPublisher
    from polystream.settings import load_settings

    settings = load_settings()
    app = create_app(ApiDeps(settings=settings, publisher=InMemoryEventPublisher(
        p.broker), receipts=p.receipts, audit=p.audit, source="api-embedded",
        reads=p.read_service(settings.reads)))
    console.print(f"API on http://127.0.0.1:{port}/docs (in-memory platform; Ctrl-C stops)")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
