"""Moving events from a source (the generator, a recorded file) to a sink, on schedule.

The pacing is open loop: with ``rate`` R, event *i* is due at ``start + i / R`` whatever
happened before. A sink that stalls does not stretch the schedule; the loop stops sleeping
until it has caught up and reports how far behind it was (the lag). A closed loop would
hide exactly the slowness a load test is meant to find.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import IO, Final

from pydantic import BaseModel, ConfigDict

from polystream.bus.ports import BulkEventPublisher, PublishError
from polystream.bus.topology import topic_of
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import decode
from polystream.simulate.wire import SimEvent

Send = Callable[[str, str, bytes], None]
"""(topic, key, value) -> None; raises to stop the run."""

ProgressFn = Callable[[int, float, float], None]
"""(events sent, elapsed seconds, current lag in seconds) -> None; called ~10 times a second."""

_PROGRESS_EVERY_S: Final = 0.1


@dataclass(slots=True)
class RunReport:
    """What a run did; filled in as it goes, so it is meaningful after an error too."""

    sent: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    max_lag_s: float = 0.0
    final_lag_s: float = 0.0
    #: "events" (the limit), "duration", "end of input", "error" or "interrupted"
    stopped_by: str = "end of input"

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def planned_limit(events: int | None, duration_s: float | None, rate: float) -> int | None:
    """How many events a run sends at most. With a rate, a duration is a number of scheduled
    events (rate x duration); without one, the duration is a wall-clock limit instead."""
    limits = [events] if events is not None else []
    if duration_s is not None and rate > 0:
        limits.append(math.ceil(rate * duration_s))
    return min(limits) if limits else None


def pump(
    source: Iterable[SimEvent],
    send: Send,
    *,
    report: RunReport,
    events: int | None = None,
    duration_s: float | None = None,
    rate: float = 0.0,
    progress: ProgressFn | None = None,
    check: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> RunReport:
    """Send ``source`` through ``send`` until it ends, ``events`` were sent, or ``duration_s``.

    ``check`` runs every few hundred events (e.g. "has the publisher seen a failure?") and
    raises to stop the run. ``report`` is updated in place, so the caller still has the
    counts when an exception escapes.
    """
    if rate < 0:
        raise ValueError("rate must be >= 0")
    limit = planned_limit(events, duration_s, rate)
    limit_reason = "events" if events is not None and limit == events else "duration"
    wall_limit = duration_s if rate == 0 else None
    stream: Iterator[SimEvent] = iter(source if limit is None else islice(source, limit))
    # The schedule starts when the first event exists: building the catalogue and hashing
    # the password happen before it and are not lag.
    first = next(stream, None)
    if first is not None:
        stream = chain((first,), stream)
    # How often to look at the clock: ~200 times per second of schedule at a given rate (so a
    # burst never exceeds ~5 ms of events), every 1024 events flat out.
    step = 1024 if rate == 0 else max(1, min(1024, int(rate / 200)))
    by_type = report.by_type
    count = report.sent
    start = clock()
    last_progress = start
    next_check = count + step
    report.stopped_by = "end of input"
    try:
        for event in stream:
            send(event.topic, event.key, event.value)
            by_type[event.type] = by_type.get(event.type, 0) + 1
            count += 1
            if count < next_check:
                continue
            next_check = count + step
            report.sent = count
            now = clock()
            if rate > 0:
                due = start + count / rate  # when the next event is scheduled
                if due > now:
                    sleep(due - now)
                    now = clock()
                    report.final_lag_s = 0.0
                else:
                    report.final_lag_s = now - due
                    report.max_lag_s = max(report.max_lag_s, report.final_lag_s)
            if check is not None:
                check()
            if progress is not None and now - last_progress >= _PROGRESS_EVERY_S:
                last_progress = now
                progress(count, now - start, report.final_lag_s)
            if wall_limit is not None and now - start >= wall_limit:
                report.stopped_by = "duration"
                break
        else:
            if limit is not None and count >= limit:
                report.stopped_by = limit_reason
    except KeyboardInterrupt:
        report.stopped_by = "interrupted"
        raise
    except BaseException:
        report.stopped_by = "error"
        raise
    finally:
        report.sent = count
        report.elapsed_s = clock() - start
        if progress is not None:
            progress(count, report.elapsed_s, report.final_lag_s)
    return report


# --- sinks -------------------------------------------------------------------------------


class JsonlWriter:
    """``--out``: one encoded event per line, exactly the bytes that would go to Kafka."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb", buffering=1 << 20)

    def send(self, topic: str, key: str, value: bytes) -> None:
        self._file.write(value)
        self._file.write(b"\n")

    def close(self) -> None:
        self._file.close()


class PublisherSink:
    """A :class:`BulkEventPublisher` as a sink: fire-and-count, failures stop the run."""

    def __init__(self, publisher: BulkEventPublisher) -> None:
        self.publisher = publisher
        self.send: Send = publisher.publish_fire

    def check(self) -> None:
        stats = self.publisher.stats()
        if stats.failed:
            raise PublishError(
                f"{stats.failed} event(s) not delivered (first: {stats.first_error})"
            )


# --- recorded files ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvalidLine:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class FileCheck:
    """Result of validating a recorded JSONL file."""

    path: Path
    events: int = 0
    invalid_count: int = 0
    #: The first invalid lines (at most ``max_reported``), with their reasons.
    invalid: list[InvalidLine] = field(default_factory=list)
    invalid_lines: set[int] = field(default_factory=set)


class RecordedFileError(ValueError):
    """A recorded file with invalid lines (and no permission to skip them)."""

    def __init__(self, check: FileCheck) -> None:
        self.check = check
        lines = [
            f"{check.path}: {check.invalid_count} invalid line(s) out of "
            f"{check.events + check.invalid_count}; nothing was published",
            *(f"  {problem}" for problem in check.invalid),
        ]
        if check.invalid_count > len(check.invalid):
            lines.append(f"  ... and {check.invalid_count - len(check.invalid)} more")
        super().__init__("\n".join(lines))


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if line.strip():  # blank lines (a trailing newline, spacing) are not events
                yield number, line


def check_recorded(path: Path, *, max_reported: int = 20) -> FileCheck:
    """Validate every line of ``path`` with the contract's full ``decode``."""
    check = FileCheck(path)
    for number, line in _lines(path):
        try:
            decode(line)
        except InvalidEvent as exc:
            check.invalid_count += 1
            check.invalid_lines.add(number)
            if len(check.invalid) < max_reported:
                check.invalid.append(InvalidLine(number, f"{exc.code}: {exc.reason}"))
            continue
        check.events += 1
    return check


class _Route(BaseModel):
    # Only what routing needs; the line was fully validated by check_recorded already.
    model_config = ConfigDict(extra="ignore")

    type: str
    key: str


def read_recorded(
    path: Path, *, skip: set[int] | frozenset[int] = frozenset()
) -> Iterator[SimEvent]:
    """The events of a checked file, each with its original bytes (nothing re-encoded)."""
    for number, line in _lines(path):
        if number in skip:
            continue
        route = _Route.model_validate_json(line)
        yield SimEvent(route.type, topic_of(route.type).value, route.key, line)


__all__ = [
    "FileCheck",
    "InvalidLine",
    "JsonlWriter",
    "PublisherSink",
    "RecordedFileError",
    "RunReport",
    "check_recorded",
    "planned_limit",
    "pump",
    "read_recorded",
]
