"""Rates and stall warnings from successive snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

from polystream.observe.history import Recorder
from polystream.observe.model import GroupStatus, Snapshot


def snap(t: float, produced: int, consumed: int, lag: int) -> Snapshot:
    return Snapshot(
        taken_at=t, produced={"polystream.users": produced},
        groups=[GroupStatus(sink="postgres", group="g", consumed=consumed, lag=lag)],
        dead_letters=0, latest_dead_letters=[], stores=[], top_rated=[], trending=[],
        most_watched=[], active_streams=0, recent_events=[], now=datetime.now(UTC))


class Script:
    def __init__(self, snaps: list[Snapshot]) -> None:
        self.snaps, self.t = snaps, 0.0

    def take(self) -> Snapshot:
        s = self.snaps.pop(0)
        self.t = s.taken_at
        return s


def test_rates_are_per_second_differences_and_a_stuck_group_is_flagged() -> None:
    script = Script([snap(0, 0, 0, 0), snap(2, 100, 50, 50), snap(7, 200, 50, 150),
                     snap(13, 300, 50, 250), snap(14, 400, 400, 0)])
    rec = Recorder(script.take, interval_s=1.0, stall_after_s=10.0, clock=lambda: script.t + 5)
    first = rec.latest()
    assert first.produced_rate == {} and first.stalled == []
    second = rec.latest()
    assert second.produced_rate == {"polystream.users": 50.0}
    assert second.consumed_rate == {"postgres": 25.0}
    assert rec.latest().stalled == []  # 5 s without progress: not yet
    assert rec.latest().stalled == ["postgres"]  # 11 s with lag and no commit
    assert rec.latest().stalled == []  # moving again
    assert len(rec.frames) == 5


def test_pages_share_a_frame_within_the_interval() -> None:
    calls = []

    def take() -> Snapshot:
        calls.append(1)
        return snap(100.0, 1, 1, 0)

    rec = Recorder(take, interval_s=1.0, clock=lambda: 100.5)
    assert rec.latest() is rec.latest()
    assert len(calls) == 1
