"""The bus ports in one process, for the embedded mode and for tests.

Behaves like the Kafka implementation where the workers can tell the difference: keys are hashed
with Kafka's murmur2 (a key lands in the same partition number as on Kafka), order is kept per
partition, offsets are committed per consumer group only when asked, a group splits partitions
among its members with the range assignor, and whatever a member leaves uncommitted is delivered
again to the partition's next owner.

Differences, deliberate: a rebalance happens at once when a member joins or leaves (no revoke
handshake), so a member may still hold records of a partition that already moved; its commit of
that partition is ignored, exactly as with Kafka (at-least-once, the new owner redoes them). There
is no retention: every record stays until its topic is deleted.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import MappingProxyType

from polystream.bus.partitioner import partition_for
from polystream.bus.ports import (
    BusError,
    Delivered,
    PartitionsCallback,
    ProgressMark,
    PublishError,
    PublisherStats,
    Record,
    TopicSpec,
    partitions_difference,
)
from polystream.bus.tally import DeliveryTally

_EMPTY_HEADERS: Mapping[str, bytes] = MappingProxyType({})


TP = tuple[str, int]


_FROM_COMMITTED = -1


def _timestamp(record: Record) -> int:
    return record.timestamp_ms


@dataclass(eq=False)
class _Member:
    member_id: str
    topics: frozenset[str]
    assigned: list[TP] = field(default_factory=list)
    positions: dict[TP, int] = field(default_factory=dict)
    # Rebalance events not yet seen by the member's hooks, in order: (assigned?, partitions).
    pending: list[tuple[bool, list[TP]]] = field(default_factory=list)
    # The assignment as the member's own thread knows it: like Kafka's, it changes only when
    # poll_batch serves the rebalance (the broker-side truth is `assigned`).
    visible: list[TP] = field(default_factory=list)
    next_start: int = 0  # rotates which partition a batch starts with, so none starves
    paused: set[TP] = field(default_factory=set)
    active: bool = True
    # The group's committed offsets: a newly assigned partition starts from what is committed
    # when it is first read, as Kafka fetches it then (a commit may land in between).
    committed: dict[TP, int] = field(default_factory=dict)


@dataclass(eq=False)
class _Group:
    members: dict[str, _Member] = field(default_factory=dict)
    committed: dict[TP, int] = field(default_factory=dict)
    joined: itertools.count[int] = field(default_factory=itertools.count)


class InMemoryBroker:
    """Topics, partitions and consumer groups behind one lock; share one per process.

    ``auto_create_topics`` mirrors Kafka's broker setting: on, a publish to an unknown topic
    creates it with ``partitions_default`` partitions; off (like our Kafka), it fails.
    """

    def __init__(self, partitions_default: int = 6, *, auto_create_topics: bool = True) -> None:
        if partitions_default < 1:
            raise ValueError("partitions_default must be >= 1")
        self.partitions_default = partitions_default
        self.auto_create_topics = auto_create_topics
        self._cond = threading.Condition(threading.Lock())
        self._topics: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = {}
        self._fail_remaining = 0
        self._fail_reason = ""

    # -- administration ---------------------------------------------------------------------------

    def ensure_topics(self, specs: Sequence[TopicSpec], *,
                      grow_partitions: bool = False) -> list[tuple[str, str]]:
        """Same contract as `polystream.bus.admin.ensure_topics`."""
        actions: list[tuple[str, str]] = []
        with self._cond:
            for spec in specs:
                if spec.partitions < 1:
                    raise BusError(f"topic {spec.name}: partitions must be >= 1")
                logs = self._topics.get(spec.name)
                if logs is None:
                    self._topics[spec.name] = [[] for _ in range(spec.partitions)]
                    actions.append((spec.name, "created"))
                elif len(logs) < spec.partitions and grow_partitions:
                    before = len(logs)
                    logs.extend([] for _ in range(spec.partitions - before))
                    actions.append((spec.name, f"partitions {before}→{spec.partitions}"))
                else:
                    actions.append((spec.name, partitions_difference(len(logs),
                                                                     spec.partitions)))
            self._rebalance_for({name for name, action in actions
                                 if action == "created" or action.startswith("partitions ")})
        return actions

    def delete_topics(self, names: Iterable[str]) -> None:
        with self._cond:
            gone = {name for name in names if self._topics.pop(name, None) is not None}
            for group in self._groups.values():
                for tp in [tp for tp in group.committed if tp[0] in gone]:
                    del group.committed[tp]
            self._rebalance_for(gone)

    def topics(self) -> dict[str, int]:
        """Topic → number of partitions."""
        with self._cond:
            return {name: len(logs) for name, logs in self._topics.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._cond:
            logs = self._topics.get(topic)
            if logs is None:
                raise BusError(f"unknown topic {topic}")
            return {p: len(log) for p, log in enumerate(logs)}

    def committed(self, group_id: str) -> dict[TP, int]:
        with self._cond:
            group = self._groups.get(group_id)
            return dict(group.committed) if group else {}

    def group_lag(self, group_id: str, topics: Iterable[str]) -> dict[TP, int]:
        """Records not yet committed by the group, per partition (unknown topics are skipped)."""
        with self._cond:
            group = self._groups.get(group_id)
            committed = group.committed if group else {}
            return {
                (topic, p): len(log) - committed.get((topic, p), 0)
                for topic in topics
                for p, log in enumerate(self._topics.get(topic, ()))
            }

    def fail_next_publishes(self, n: int, reason: str = "injected failure") -> None:
        """The next ``n`` publishes (either path) fail with PublishError(reason), as a broker
        rejecting them would: the future fails / the failure is counted; nothing is stored."""
        with self._cond:
            self._fail_remaining = n
            self._fail_reason = reason

    # -- data path (called by the publisher and consumers) ----------------------------------------

    def _append(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None) -> Delivered:
        key_bytes = key.encode()
        with self._cond:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                raise PublishError(f"delivery to {topic} failed: {self._fail_reason}")
            logs = self._topics.get(topic)
            if logs is None:
                if not self.auto_create_topics:
                    raise PublishError(f"delivery to {topic} failed: unknown topic")
                logs = self._topics[topic] = [[] for _ in range(self.partitions_default)]
                self._rebalance_for({topic})
            partition = partition_for(key_bytes, len(logs))
            log = logs[partition]
            offset = len(log)
            log.append(Record(topic, partition, offset, key_bytes, value,
                              dict(headers) if headers else _EMPTY_HEADERS,
                              time.time_ns() // 1_000_000))
            self._cond.notify_all()
        return Delivered(topic, partition, offset)

    def _join(self, group_id: str, topics: Iterable[str]) -> _Member:
        with self._cond:
            group = self._groups.setdefault(group_id, _Group())
            # Zero-padded join order: the range assignor sorts members by id, so earlier members
            # get the lower partitions, deterministically.
            member = _Member(f"{group_id}-{next(group.joined):06d}", frozenset(topics),
                             committed=group.committed)
            group.members[member.member_id] = member
            self._rebalance(group)
            return member

    def _leave(self, group_id: str, member: _Member) -> list[TP]:
        with self._cond:
            group = self._groups[group_id]
            member.active = False
            owned = member.visible
            member.assigned, member.positions, member.visible = [], {}, []
            member.pending.clear()
            del group.members[member.member_id]
            self._rebalance(group)
            self._cond.notify_all()
            return owned

    def _rebalance_for(self, topics: set[str]) -> None:
        if not topics:
            return
        for group in self._groups.values():
            if any(m.topics & topics for m in group.members.values()):
                self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        """Range assignment per topic over the members subscribed to it, sorted by member id."""
        wanted: dict[str, list[TP]] = {mid: [] for mid in group.members}
        for topic in sorted(set().union(*(m.topics for m in group.members.values()))):
            logs = self._topics.get(topic)
            if logs is None:
                continue
            subscribers = sorted(mid for mid, m in group.members.items() if topic in m.topics)
            per, extra = divmod(len(logs), len(subscribers))
            start = 0
            for i, mid in enumerate(subscribers):
                count = per + (1 if i < extra else 0)
                wanted[mid].extend((topic, p) for p in range(start, start + count))
                start += count
        for mid, member in group.members.items():
            old, new = set(member.assigned), set(wanted[mid])
            revoked, added = sorted(old - new), sorted(new - old)
            for tp in revoked:
                # Its uncommitted records belong to the next owner now.
                del member.positions[tp]
                member.paused.discard(tp)
            for tp in added:
                member.positions[tp] = _FROM_COMMITTED
            member.assigned = sorted(new)
            if revoked:
                member.pending.append((False, revoked))
            if added:
                member.pending.append((True, added))
        self._cond.notify_all()

    def _take(self, member: _Member, max_records: int) -> list[Record]:
        out: list[Record] = []
        assigned = member.assigned
        if not assigned:
            return out
        start = member.next_start % len(assigned)
        member.next_start += 1
        for tp in itertools.chain(assigned[start:], assigned[:start]):
            room = max_records - len(out)
            if room <= 0:
                break
            if tp in member.paused:
                continue
            logs = self._topics.get(tp[0])
            if logs is None:
                continue
            pos = member.positions[tp]
            if pos == _FROM_COMMITTED:
                pos = member.committed.get(tp, 0)
            chunk = logs[tp[1]][pos:pos + room]
            if chunk:
                out.extend(chunk)
                member.positions[tp] = pos + len(chunk)
        return out


class InMemoryEventPublisher:
    """`BulkEventPublisher` on an `InMemoryBroker`; delivery is synchronous, so every future is
    already resolved when ``publish`` returns."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker
        self._tally = DeliveryTally()
        self._closed = False

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Future[Delivered]:
        fut: Future[Delivered] = Future()
        outcome = self._deliver(topic, key, value, headers)
        if isinstance(outcome, PublishError):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
        return fut

    def publish_fire(self, topic: str, key: str, value: bytes,
                     headers: Mapping[str, bytes] | None = None) -> None:
        self._deliver(topic, key, value, headers)  # a failure is counted; flush raises it

    def _deliver(self, topic: str, key: str, value: bytes,
                 headers: Mapping[str, bytes] | None) -> Delivered | PublishError:
        if self._closed:
            raise PublishError("publisher is closed")  # refused at once, like Kafka's
        try:
            delivered = self._broker._append(topic, key, value, headers)
        except PublishError as exc:
            self._tally.failed(str(exc))
            return exc
        self._tally.acked()
        return delivered

    def stats(self) -> PublisherStats:
        return self._tally.stats()

    def flush(self, timeout_s: float = 30.0) -> None:
        if undelivered := self._tally.take_unreported():
            raise PublishError(undelivered)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush(timeout_s)

    def __enter__(self) -> InMemoryEventPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class InMemoryEventConsumer:
    """`EventConsumer` on an `InMemoryBroker`. Joins the group on creation; like Kafka's, the
    rebalance hooks run inside ``poll_batch`` on the caller's thread (and ``on_revoke`` in
    ``close``)."""

    def __init__(self, broker: InMemoryBroker, group_id: str, topics: Sequence[str], *,
                 client_id: str = "", on_assign: PartitionsCallback | None = None,
                 on_revoke: PartitionsCallback | None = None) -> None:
        self._broker = broker
        self._group_id = group_id
        self.client_id = client_id
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._member = broker._join(group_id, topics)
        self._closed = False

    @property
    def member_id(self) -> str:
        return self._member.member_id

    def _run_hooks(self) -> None:
        with self._broker._cond:
            events, self._member.pending = self._member.pending, []
            visible = set(self._member.visible)
            for assigned, partitions in events:
                if assigned:
                    visible.update(partitions)
                else:
                    visible.difference_update(partitions)
            self._member.visible = sorted(visible)
        # Outside the lock: a hook may call back into the consumer (commit, assignment).
        for assigned, partitions in events:
            hook = self._on_assign if assigned else self._on_revoke
            if hook is not None:
                hook(partitions)

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._closed:
            raise BusError(f"consumer {self._group_id} is closed")
        deadline = time.monotonic() + max(0.0, timeout_s)
        member, cond = self._member, self._broker._cond
        while True:
            self._run_hooks()
            with cond:
                while not member.pending:
                    records = self._broker._take(member, max_records)
                    if records:
                        return records
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    cond.wait(remaining)

    def commit(self, records: Sequence[Record]) -> None:
        if self._closed:
            raise BusError(f"consumer {self._group_id} is closed")
        highest: dict[TP, int] = {}
        for rec in records:
            tp = (rec.topic, rec.partition)
            if rec.offset > highest.get(tp, -1):
                highest[tp] = rec.offset
        with self._broker._cond:
            group = self._broker._groups[self._group_id]
            owned = set(self._member.assigned)
            for tp, offset in highest.items():
                # A partition that moved meanwhile belongs to its new owner's commits.
                if tp in owned:
                    group.committed[tp] = offset + 1

    def seek_to_committed(self) -> None:
        if self._closed:
            raise BusError(f"consumer {self._group_id} is closed")
        with self._broker._cond:
            committed = self._broker._groups[self._group_id].committed
            for tp in self._member.assigned:
                self._member.positions[tp] = committed.get(tp, 0)

    def assignment(self) -> list[tuple[str, int]]:
        with self._broker._cond:
            return list(self._member.visible)

    def partition_of(self, topic: str, key: str) -> int:
        with self._broker._cond:
            logs = self._broker._topics.get(topic)
            if logs is None:
                raise BusError(f"unknown topic {topic}")
            return partition_for(key.encode(), len(logs))

    def processed_before(self, marks: Sequence[ProgressMark]) -> list[bool]:
        with self._broker._cond:
            committed = self._broker._groups[self._group_id].committed
            out: list[bool] = []
            for topic, partition, timestamp_ms in marks:
                logs = self._broker._topics.get(topic)
                if logs is None or partition >= len(logs):
                    raise BusError(f"unknown partition {topic}[{partition}]")
                log = logs[partition]
                # Kafka's ListOffsets by time: the first record at or after the time (our
                # timestamps are the append times, so the log is sorted by them).
                first_at = bisect.bisect_left(log, timestamp_ms, key=_timestamp)
                out.append(committed.get((topic, partition), 0) >= first_at)
            return out

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        with self._broker._cond:
            owned = set(self._member.assigned)
            self._member.paused.update(tp for tp in partitions if tp in owned)

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        with self._broker._cond:
            self._member.paused.difference_update(partitions)
            self._broker._cond.notify_all()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        owned = self._broker._leave(self._group_id, self._member)
        if owned and self._on_revoke is not None:
            self._on_revoke(owned)

    def __enter__(self) -> InMemoryEventConsumer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
