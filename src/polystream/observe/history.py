"""Successive snapshots turned into rates, a few minutes of history, and stall warnings."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from polystream.observe.model import Frame, Snapshot

#: Frames kept for a page that connects late (at one per second: five minutes).
HISTORY = 300
#: A group with lag that commits nothing for this long is flagged as stalled.
STALL_AFTER_S = 10.0


class Recorder:
    """Takes a snapshot at most every ``interval_s`` however many pages are watching: every
    stream asks for the latest frame and only the first one after the interval pays for it."""

    def __init__(self, take: Callable[[], Snapshot], *, interval_s: float = 1.0,
                 stall_after_s: float = STALL_AFTER_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._take = take
        self._clock = clock
        self.interval_s = interval_s
        self._stall_after_s = stall_after_s
        self._lock = threading.Lock()
        self.frames: deque[Frame] = deque(maxlen=HISTORY)
        # Sink -> (consumed, since when it has not changed).
        self._still: dict[str, tuple[int, float]] = {}

    def latest(self) -> Frame:
        """A frame at most ``interval_s`` old (blocking: call it from a thread)."""
        with self._lock:
            last = self.frames[-1] if self.frames else None
            if last is not None and self._clock() - last.snapshot.taken_at < self.interval_s:
                return last
            frame = self._frame(last.snapshot if last else None, self._take())
            self.frames.append(frame)
            return frame

    def _frame(self, before: Snapshot | None, now: Snapshot) -> Frame:
        produced_rate: dict[str, float] = {}
        consumed_rate: dict[str, float] = {}
        if before is not None and now.taken_at > before.taken_at:
            dt = now.taken_at - before.taken_at
            produced_rate = {
                t: round(max(0, n - before.produced.get(t, 0)) / dt, 1)
                for t, n in now.produced.items()}
            was = {g.sink: g.consumed for g in before.groups}
            consumed_rate = {
                g.sink: round(max(0, g.consumed - was.get(g.sink, g.consumed)) / dt, 1)
                for g in now.groups}
        stalled = []
        for g in now.groups:
            consumed, since = self._still.get(g.sink, (-1, now.taken_at))
            if consumed != g.consumed:
                since = now.taken_at
            self._still[g.sink] = (g.consumed, since)
            if g.lag > 0 and now.taken_at - since >= self._stall_after_s:
                stalled.append(g.sink)
        return Frame(snapshot=now, produced_rate=produced_rate, consumed_rate=consumed_rate,
                     stalled=stalled)
