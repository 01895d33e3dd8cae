"""Pacing (open loop), limits, sinks and recorded files."""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.bus.memory import InMemoryBroker, InMemoryEventPublisher
from polystream.bus.ports import PublishError
from polystream.domain.events import encode
from polystream.domain.examples import example_event
from polystream.simulate import (
    JsonlWriter,
    PublisherSink,
    RunReport,
    SimEvent,
    check_recorded,
    generate,
    pump,
    read_recorded,
)

from .conftest import config


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _events(n: int) -> list[SimEvent]:
    return [SimEvent("flag.set", "polystream.flags", "f", b"{}")] * n


def test_a_rate_spreads_events_over_time_without_lag() -> None:
    clock = FakeClock()
    report = pump(_events(1000), lambda *_: None, report=RunReport(), rate=100.0,
                  clock=clock, sleep=clock.sleep)  # fmt: skip
    assert report.sent == 1000
    assert report.elapsed_s == pytest.approx(10.0, abs=0.02)
    assert report.max_lag_s == 0.0


def test_open_loop_a_slow_sink_does_not_slow_the_schedule_it_reports_the_lag() -> None:
    clock = FakeClock()

    def slow_send(*_: object) -> None:
        clock.now += 0.02  # the sink manages 50 events/s; the schedule asks for 100

    report = pump(_events(100), slow_send, report=RunReport(), rate=100.0,
                  clock=clock, sleep=clock.sleep)  # fmt: skip
    assert report.sent == 100
    assert not clock.sleeps  # never waited: it was always behind
    assert report.max_lag_s == pytest.approx(1.0, abs=0.05)  # 100 events due in 1 s took 2 s


def test_events_then_duration_limits() -> None:
    clock = FakeClock()
    report = pump(_events(10_000), lambda *_: None, report=RunReport(), rate=500.0,
                  duration_s=2.0, clock=clock, sleep=clock.sleep)  # fmt: skip
    assert (report.sent, report.stopped_by) == (1000, "duration")
    report = pump(_events(10_000), lambda *_: None, report=RunReport(), events=300)
    assert (report.sent, report.stopped_by) == (300, "events")
    report = pump(_events(10), lambda *_: None, report=RunReport(), events=300)
    assert (report.sent, report.stopped_by) == (10, "end of input")


def test_without_a_rate_the_duration_is_wall_clock() -> None:
    clock = FakeClock()

    def send(*_: object) -> None:
        clock.now += 0.001

    report = pump(_events(100_000), send, report=RunReport(), duration_s=5.0, clock=clock)
    assert report.stopped_by == "duration"
    assert 5000 <= report.sent <= 5000 + 1024


def test_counts_per_type_and_progress() -> None:
    seen: list[int] = []
    events = list(generate(config(seed=2, titles=5), 5000))
    report = pump(events, lambda *_: None, report=RunReport(),
                  progress=lambda done, _e, _l: seen.append(done))  # fmt: skip
    assert sum(report.by_type.values()) == 5000
    assert seen[-1] == 5000


def test_a_publish_failure_stops_the_run_and_keeps_the_counts() -> None:
    broker = InMemoryBroker()
    publisher = InMemoryEventPublisher(broker)
    sink = PublisherSink(publisher)
    broker.fail_next_publishes(1, "broker unreachable")
    report = RunReport()
    with pytest.raises(PublishError, match="broker unreachable"):
        pump(generate(config(seed=2, titles=5)), sink.send, report=report, events=50_000,
             check=sink.check)  # fmt: skip
    assert report.stopped_by == "error"
    assert 0 < report.sent < 50_000


def test_out_then_from_publishes_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = JsonlWriter(path)
    pump(generate(config(seed=8)), writer.send, report=RunReport(), events=5000)
    writer.close()
    original = path.read_bytes().splitlines()
    assert len(original) == 5000

    check = check_recorded(path)
    assert (check.events, check.invalid_count) == (5000, 0)
    broker = InMemoryBroker()
    publisher = InMemoryEventPublisher(broker)
    report = pump(read_recorded(path), publisher.publish_fire, report=RunReport())
    publisher.close()
    assert report.sent == publisher.stats().acked == 5000
    published = _all_records(broker)
    assert sorted(value for _, _, value in published) == sorted(original)
    generated = list(generate(config(seed=8), 5000))
    assert {(e.topic, e.key, e.value) for e in generated} == set(published)


def _all_records(broker: InMemoryBroker) -> list[tuple[str, str, bytes]]:
    from polystream.bus.memory import InMemoryEventConsumer

    consumer = InMemoryEventConsumer(broker, "check", list(broker.topics()))
    records = []
    while batch := consumer.poll_batch(10_000, 0.05):
        records.extend(batch)
    consumer.close()
    return [(r.topic, (r.key or b"").decode(), r.value or b"") for r in records]


def test_invalid_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    good = [encode(example_event(t)) for t in ("flag.set", "rating.submitted", "user.erased")]
    broken = encode(example_event("rating.submitted")).replace(b'"stars":4', b'"stars":9')
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good[0], b"not json", good[1], b"", broken, good[2]]) + b"\n")
    check = check_recorded(path)
    assert check.events == 3
    assert check.invalid_lines == {2, 5}
    reasons = [str(problem) for problem in check.invalid]
    assert reasons[0].startswith("line 2: malformed: record is not valid JSON")
    assert reasons[1].startswith("line 5: validation: payload.stars: Input should be less than")
    replay = list(read_recorded(path, skip=check.invalid_lines))
    assert [e.value for e in replay] == good
    assert [e.topic for e in replay] == [
        "polystream.flags",
        "polystream.ratings",
        "polystream.users",
    ]
