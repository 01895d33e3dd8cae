"""When an event that waits for another topic may be decided: by the group's progress through
that topic, never by how long it has waited.

Kafka orders records per partition, not across topics: a sink can read a user's rating before
that user's registration, because the two live on different topics. The sink then *defers* the
rating (its store applied and recorded nothing). The question is when to give up waiting and
make the store's "unknown user" final. Waiting a fixed wall-clock time makes the answer depend
on how fast the sink catches up: after an outage or a restart, a backlog of ratings would wait
their 30 s while the registrations they need sit unread behind them, and be refused for good.

The rule here depends on the log alone. An event E on topic A, keyed K, with record time t, is
decided once, for every topic B that A's events may need (`upstream`), the consumer's group has
committed every record of B's partition for K whose timestamp is before t + grace (Kafka's time
index and the group's committed offsets answer that; see `EventConsumer.processed_before`).
Whatever B held for K before E was produced has then been applied, by this member or another
one of the group, so the store's answer no longer depends on timing. ``grace`` absorbs clock
skew between producers and the time a record is in flight; it is also a floor on the wall
clock (E is not decided before t + grace), which only delays a decision, never forces one. A
backlog, a restart or a frozen worker therefore change when an event is decided, never what.

This needs every topic's events to be keyed by the same aggregate id as their prerequisites (all
user-related families are keyed by user id), so K's records on B are in a known partition.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from polystream.bus.ports import BusError, EventConsumer, ProgressMark

log = logging.getLogger(__name__)

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Waiting:
    """One deferred record, as the gate sees it."""

    topic: str
    key: str
    timestamp_ms: int


class ProgressGate:
    """Decides which deferred records may be decided now. One per consumer-group member.

    What the group is known to have committed (per partition, a time before which every record
    is done) only grows, so it is cached and refreshed at most every ``check_every_s``, with a
    few probes of the broker per refresh (a binary search over the waiting times).
    """

    def __init__(self, upstream: Mapping[str, Sequence[str]], *, grace_s: float,
                 check_every_s: float = 0.5, probes: int = 3,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.upstream = {topic: tuple(deps) for topic, deps in upstream.items()}
        self.grace_ms = int(grace_s * 1000)
        self.check_every_s = check_every_s
        self.probes = probes
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._done_before: dict[TP, int] = {}
        self._partitions: dict[tuple[str, str], int] = {}
        self._next_check = -1e18

    def forget(self) -> None:
        """After a rewind or a rebalance: the cache may speak of partitions we no longer
        see the same way (it only ever errs on the side of waiting after this)."""
        self._done_before.clear()
        self._next_check = -1e18

    def decidable(self, items: Sequence[Waiting], consumer: EventConsumer) -> list[bool]:
        """For each item (in log order per topic and key): may it be decided now? Once an item
        of a (topic, key) may not, none of the later items of that (topic, key) may either, so
        a key's order holds."""
        now_ms = self._clock_ms()
        needs: list[list[tuple[TP, int]] | None] = []
        demand: dict[TP, list[int]] = defaultdict(list)
        for item in items:
            due = item.timestamp_ms + self.grace_ms
            if due > now_ms:
                needs.append(None)
                continue
            try:
                tps = [(b, self._partition(consumer, b, item.key))
                       for b in self.upstream.get(item.topic, ())]
            except BusError as exc:
                log.warning("progress: partition lookup failed, waiting: %s", exc)
                needs.append(None)
                continue
            needs.append([(tp, due) for tp in tps])
            for tp in tps:
                if due > self._done_before.get(tp, -1):
                    demand[tp].append(due)
        if demand and time.monotonic() >= self._next_check:
            started = time.monotonic()
            self._refresh(demand, consumer)
            # Each probe is a few broker round trips; on a loaded host they take long enough
            # to starve the batches themselves. Asking at most a fifth of the time keeps the
            # sink reading (which is also what lets the group get past the waiting times).
            spent = time.monotonic() - started
            self._next_check = started + max(self.check_every_s, 5 * spent)
        out: list[bool] = []
        blocked: set[tuple[str, str]] = set()
        for item, need in zip(items, needs, strict=True):
            ok = (need is not None and (item.topic, item.key) not in blocked
                  and all(self._done_before.get(tp, -1) >= due for tp, due in need))
            if not ok:
                blocked.add((item.topic, item.key))
            out.append(ok)
        return out

    def _partition(self, consumer: EventConsumer, topic: str, key: str) -> int:
        found = self._partitions.get((topic, key))
        if found is None:
            if len(self._partitions) > 200_000:  # keys come and go; bound the memory
                self._partitions.clear()
            found = self._partitions[(topic, key)] = consumer.partition_of(topic, key)
        return found

    def _refresh(self, demand: Mapping[TP, list[int]], consumer: EventConsumer) -> None:
        """Binary search, per partition, for the latest waiting time the group is past."""
        ranges = {tp: sorted(set(times)) for tp, times in demand.items()}
        lo = {tp: 0 for tp in ranges}
        hi = {tp: len(times) - 1 for tp, times in ranges.items()}
        # The newest first: once a backlog is read, one probe settles everything.
        probe = dict.fromkeys(ranges, True)
        for _ in range(self.probes):
            marks: list[ProgressMark] = []
            for tp, times in ranges.items():
                if lo[tp] > hi[tp]:
                    continue
                at = hi[tp] if probe[tp] else (lo[tp] + hi[tp]) // 2
                marks.append(ProgressMark(tp[0], tp[1], times[at]))
            if not marks:
                return
            try:
                answers = consumer.processed_before(marks)
            except BusError as exc:
                log.warning("progress: the group's position is unknown for now: %s", exc)
                return
            for mark, done in zip(marks, answers, strict=True):
                tp = (mark.topic, mark.partition)
                times = ranges[tp]
                at = times.index(mark.timestamp_ms)
                probe[tp] = False
                if done:
                    self._done_before[tp] = max(self._done_before.get(tp, -1), mark.timestamp_ms)
                    lo[tp] = at + 1
                else:
                    hi[tp] = at - 1
