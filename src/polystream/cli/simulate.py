"""`polystream simulate`: realistic, deterministic traffic into Kafka (or a JSONL file).

Exit codes: 0 done; 1 a publish failed (or the producer's acked count does not match what was
sent); 2 bad options or bad input files (a recorded file with invalid lines, a catalogue with
invalid rows); 130 interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from polystream.bus.ports import BulkEventPublisher, BusError, PublishError
from polystream.bus.topology import topic_of
from polystream.domain.events import EVENT_TYPES
from polystream.settings import Settings, load_settings
from polystream.simulate import (
    DEFAULT_START,
    Behaviour,
    CatalogImportError,
    JsonlWriter,
    PublisherSink,
    RecordedFileError,
    RunReport,
    SimConfig,
    SimEvent,
    check_recorded,
    generate,
    load_catalog,
    pump,
    read_recorded,
)
from polystream.simulate.runner import Send

#: Events generated when neither --events nor --duration is given.
DEFAULT_EVENTS: Final = 10_000
_FLUSH_TIMEOUT_S: Final = 60.0

err = Console(stderr=True)
out = Console()


def open_publisher(settings: Settings, *, ensure_topics: bool) -> BulkEventPublisher:
    """The Kafka publisher, after making sure the event topics exist (tests replace this)."""
    from polystream.bus.admin import end_offsets
    from polystream.bus.admin import ensure_topics as create_topics
    from polystream.bus.kafka import KafkaEventPublisher
    from polystream.bus.topology import topic_specs

    wanted = sorted({topic_of(t).value for t in EVENT_TYPES})
    if ensure_topics:
        create_topics(settings.kafka, [s for s in topic_specs(settings.kafka) if s.name in wanted])
    else:
        # librdkafka would wait for a missing topic until the message timeout (minutes);
        # saying so at once, with the fix, is kinder.
        missing = []
        for topic in wanted:
            try:
                end_offsets(settings.kafka, topic)
            except BusError as exc:
                if "unknown topic" not in str(exc):
                    raise
                missing.append(topic)
        if missing:
            raise BusError(
                f"topic(s) missing: {', '.join(missing)}; run `polystream topics ensure` "
                "or pass --ensure-topics"
            )
    from polystream.shred import wrap_publisher

    return wrap_publisher(settings, KafkaEventPublisher(settings.kafka,
                                                        client_id="polystream-simulate"),
                          "simulate")


def _complain(title: str, detail: str, *, style: str = "bold red") -> None:
    # Details are data (paths, pydantic messages with [brackets]): never markup, never wrapped,
    # so a line number or a field path stays on one greppable line.
    err.print(f"[{style}]{escape(title)}:[/] {escape(detail)}", highlight=False, soft_wrap=True)


def _parse_start(text: str | None) -> datetime:
    if text is None:
        return DEFAULT_START
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time such as 2025-01-01T00:00:00Z", param_hint="--start"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # documented: a time without offset is UTC
    return moment.astimezone(UTC)


class _Bar:
    """The live view: count, rate, lag. Updated ~10 times a second by the runner."""

    def __init__(self, console: Console, total: int | None, label: str, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>12,.0f} events"),
            TextColumn("[cyan]{task.fields[rate]:>9,.0f}/s"),
            TextColumn("lag {task.fields[lag]:.2f}s"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            refresh_per_second=8,
        )
        self._task: TaskID = self._progress.add_task(label, total=total, rate=0.0, lag=0.0)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def update(self, done: int, elapsed_s: float, lag_s: float) -> None:
        rate = done / elapsed_s if elapsed_s > 0 else 0.0
        self._progress.update(self._task, completed=done, rate=rate, lag=lag_s)

    def label(self, text: str) -> None:
        self._progress.update(self._task, description=text)


def _summary(
    report: RunReport,
    *,
    target: str,
    acked: int | None = None,
    failed: int | None = None,
    total_s: float | None = None,
) -> Table:
    table = Table(title=f"polystream simulate → {target}", show_footer=False)
    table.add_column("event type")
    table.add_column("events", justify="right")
    for event_type, count in sorted(report.by_type.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(event_type, f"{count:,}")
    table.add_section()
    table.add_row("[bold]total sent", f"[bold]{report.sent:,}")
    table.add_row("elapsed", f"{report.elapsed_s:.2f} s")
    table.add_row("rate", f"{report.rate:,.0f} events/s")
    table.add_row("max lag behind schedule", f"{report.max_lag_s:.3f} s")
    if acked is not None:
        table.add_row("acked by Kafka", f"{acked:,}")
        if total_s:
            # The honest throughput: until the last event was acknowledged, flush included.
            table.add_row("elapsed until all acked", f"{total_s:.2f} s")
            table.add_row("acked rate", f"{acked / total_s:,.0f} events/s")
    if failed is not None:
        table.add_row("failed", f"{failed:,}")
    table.add_row("stopped by", report.stopped_by)
    return table


def _input_file(*names: str, help: str) -> Any:
    """An option naming a file to read: typer refuses a missing or unreadable one (exit 2)
    before the command starts."""
    return typer.Option(*names, exists=True, dir_okay=False, readable=True, help=help)


def simulate(
    events: Annotated[
        int | None,
        typer.Option(
            "--events",
            "-n",
            min=1,
            help=f"Stop after N events (default: {DEFAULT_EVENTS:,} unless --duration, "
            "--from or --catalog-only).",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Stop after SECONDS: of schedule with --rate (rate x seconds events), of "
            "wall-clock time without.",
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Events per second, open loop (lag is reported, the schedule never slows "
            "down); 0 = as fast as possible.",
        ),
    ] = 0.0,
    users: Annotated[int, typer.Option(min=1, help="Users who sign up over the run.")] = 1000,
    titles: Annotated[int, typer.Option(min=1, help="Synthetic catalogue size.")] = 300,
    seed: Annotated[int, typer.Option(help="Same seed, same stream (byte for byte).")] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start of the simulated clock, ISO 8601, UTC when no offset is given "
            "(default: 2025-01-01T00:00:00Z)."
        ),
    ] = None,
    heartbeat: Annotated[
        int, typer.Option(min=1, max=600, help="Seconds between playback.progress heartbeats.")
    ] = Behaviour().heartbeat_s,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Write JSONL (one encoded event per line) instead of publishing.",
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        _input_file(
            "--from",
            help="Publish a recorded JSONL file (every line is validated before anything is sent).",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="With --from: report invalid lines and skip them.")
    ] = False,
    catalog: Annotated[
        Path | None,
        _input_file(
            help="Import a catalogue (.csv or .json, see docs/simulator.md) and simulate on it.",
        ),
    ] = None,
    catalog_only: Annotated[
        bool, typer.Option(help="Publish only the catalogue (titles, posters, relations).")
    ] = False,
    posters: Annotated[bool, typer.Option(help="Generate poster and backdrop images.")] = True,
    ensure_topics: Annotated[
        bool, typer.Option(help="Create missing topics first (as `polystream topics ensure`).")
    ] = False,
    source: Annotated[str, typer.Option(help="The envelopes' source field.")] = "simulator",
    progress: Annotated[bool, typer.Option(help="Show the live progress bar.")] = True,
) -> None:
    """Generate a realistic, deterministic workload and publish it (or write / replay JSONL)."""
    if from_file is not None and (catalog is not None or catalog_only):
        raise typer.BadParameter(
            "--from replays a file; it cannot be combined with --catalog or --catalog-only",
            param_hint="--from",
        )
    if skip_invalid and from_file is None:
        raise typer.BadParameter("only meaningful with --from", param_hint="--skip-invalid")

    stream: Iterator[SimEvent]
    if from_file is not None:
        with err.status(f"validating {from_file} ...", spinner="dots"):
            check = check_recorded(from_file)
        if check.invalid_count:
            problem = RecordedFileError(check)
            if not skip_invalid:
                _complain("invalid input", str(problem))
                raise typer.Exit(2)
            text = str(problem).replace("; nothing was published", "; skipping them")
            _complain("invalid lines skipped", text, style="yellow")
        stream = read_recorded(from_file, skip=check.invalid_lines)
        total: int | None = check.events if events is None else min(events, check.events)
        label = f"replaying {from_file.name}"
    else:
        try:
            entries = tuple(load_catalog(catalog)) if catalog is not None else None
            config = SimConfig(
                seed=seed,
                users=users,
                titles=titles,
                start=_parse_start(start),
                source=source,
                catalog=entries,
                posters=posters,
                catalog_only=catalog_only,
                behaviour=Behaviour(heartbeat_s=heartbeat),
            )
        except CatalogImportError as exc:
            _complain("catalogue refused", str(exc))
            raise typer.Exit(2) from None
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if events is None and duration is None and not catalog_only:
            events = DEFAULT_EVENTS
        stream = generate(config)
        total = events
        label = "simulating"

    run = _Run(
        stream, events=events, duration=duration, rate=rate, total=total, label=label, show=progress
    )
    if out_file is not None:
        run.to_file(out_file)
    else:
        run.to_kafka(ensure_topics=ensure_topics)


@dataclass
class _Run:
    stream: Iterator[SimEvent]
    events: int | None
    duration: float | None
    rate: float
    total: int | None
    label: str
    show: bool
    report: RunReport = field(default_factory=RunReport)

    def _bar(self) -> _Bar:
        return _Bar(err, self.total, self.label, self.show)

    def _pump(
        self, bar: _Bar, send: Send, check: Callable[[], None] | None = None
    ) -> None:
        pump(
            self.stream,
            send,
            report=self.report,
            events=self.events,
            duration_s=self.duration,
            rate=self.rate,
            progress=bar.update,
            check=check,
        )

    def to_file(self, path: Path) -> None:
        try:
            writer = JsonlWriter(path)
        except OSError as exc:
            _complain(f"cannot write {path}", str(exc))
            raise typer.Exit(2) from None
        interrupted = False
        try:
            with self._bar() as bar:
                self._pump(bar, writer.send)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            writer.close()
        out.print(_summary(self.report, target=str(path)))
        if interrupted:
            raise typer.Exit(130)

    def to_kafka(self, *, ensure_topics: bool) -> None:
        try:
            publisher = open_publisher(load_settings(), ensure_topics=ensure_topics)
        except BusError as exc:
            _complain("cannot publish", str(exc))
            raise typer.Exit(1) from None
        sink = PublisherSink(publisher)
        error: str | None = None
        interrupted = False
        began = time.perf_counter()
        try:
            with self._bar() as bar:
                self._pump(bar, sink.send, check=sink.check)
                bar.label("waiting for acks")
                publisher.flush(_FLUSH_TIMEOUT_S)
        except PublishError as exc:
            error = str(exc)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                publisher.close(_FLUSH_TIMEOUT_S)
            except PublishError as exc:
                error = error or str(exc)
        until_acked = time.perf_counter() - began
        stats = publisher.stats()
        out.print(
            _summary(
                self.report,
                target="kafka",
                acked=stats.acked,
                failed=stats.failed,
                total_s=until_acked,
            )
        )
        if error is not None:
            _complain("publish failed, run stopped", error)
            raise typer.Exit(1)
        if interrupted:
            raise typer.Exit(130)
        if stats.acked != self.report.sent:
            _complain(
                "not every event was acknowledged",
                f"acked {stats.acked:,} of {self.report.sent:,} events sent",
            )
            raise typer.Exit(1)
