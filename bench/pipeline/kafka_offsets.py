"""Kafka from the benchmark's side: end offsets, consumer groups' progress, first records, and
the receipts the sinks publish.

One admin client serves a whole run (the product's ``group_lag`` opens one per call, too slow
to poll four groups five times a second).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from polystream.bus.admin import GroupOffsets, _admin
from polystream.bus.kafka import consumer_config
from polystream.bus.topology import Topic
from polystream.settings import Settings

TP = tuple[str, int]
Offsets = dict[TP, int]

_LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_TIMEOUT_S: Final = 15.0


class Kafka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = _admin(settings.kafka)
        self._groups: dict[str, GroupOffsets] = {}

    def _group(self, group: str) -> GroupOffsets:
        if group not in self._groups:
            self._groups[group] = GroupOffsets(self.settings.kafka, group)
        return self._groups[group]

    def partitions(self, topics: Iterable[str]) -> list[TP]:
        meta = self.admin.list_topics(timeout=_TIMEOUT_S)
        out: list[TP] = []
        for topic in topics:
            found = meta.topics.get(topic)
            if found is None or found.error is not None:
                raise RuntimeError(f"topic {topic} is missing; run `polystream topics ensure`")
            out += [(topic, p) for p in sorted(found.partitions)]
        return out

    def ends(self, topics: Iterable[str]) -> Offsets:
        """The offset the next record of each partition will get."""
        tps = self.partitions(topics)
        for attempt in range(20):
            futures: dict[Any, Future[Any]] = self.admin.list_offsets(
                {TopicPartition(t, p): _LATEST for t, p in tps}, request_timeout=_TIMEOUT_S
            )
            try:
                return {
                    (tp.topic, tp.partition): fut.result(_TIMEOUT_S).offset
                    for tp, fut in futures.items()
                }
            except KafkaException:  # a partition's leadership settling: ask again
                if attempt == 19:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def committed(self, group: str, tps: Sequence[TP]) -> Offsets:
        return self._group(group).committed(tps)

    def position(self, group: str, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` for a group that has no member yet: its first member starts
        there (instead of at the topics' first records)."""
        self._group(group).commit(dict(offsets))
        # Read back: a group must never start anywhere else than where it was put.
        if self.committed(group, list(offsets)) != dict(offsets):
            raise RuntimeError(f"group {group} did not keep the offsets it was given")

    def active_members(self, groups: Sequence[str]) -> dict[str, int]:
        """Members per group (0 for a group that does not exist or is empty)."""
        futures = self.admin.describe_consumer_groups(list(groups), request_timeout=_TIMEOUT_S)
        out: dict[str, int] = {}
        for group, fut in futures.items():
            try:
                out[group] = len(fut.result(_TIMEOUT_S).members)
            except KafkaException:
                out[group] = 0
        return out

    def assigned(self, group: str) -> int:
        """Partitions assigned to the group's members right now."""
        futures = self.admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)
        try:
            description = futures[group].result(_TIMEOUT_S)
        except KafkaException:
            return 0
        return sum(
            len(member.assignment.topic_partitions or ())
            for member in description.members
            if member.assignment is not None
        )


def delete_groups(settings: Settings, groups: Sequence[str]) -> None:
    if not groups:
        return
    admin = _admin(settings.kafka)
    futures = admin.delete_consumer_groups(list(groups), request_timeout=_TIMEOUT_S)
    for fut in futures.values():
        try:
            fut.result(_TIMEOUT_S)
        except KafkaException:
            continue  # never created (the phase failed before its workers joined)


def first_records(settings: Settings, starts: Mapping[TP, int], ends: Mapping[TP, int],
                  group: str) -> dict[TP, tuple[int, bytes]]:
    """(Kafka timestamp in ms, value) of the first record after ``starts`` in every partition
    that received records: the moment the run's first record was produced."""
    wanted = {tp: off for tp, off in starts.items() if ends.get(tp, off) > off}
    found: dict[TP, tuple[int, bytes]] = {}
    if not wanted:
        return found
    consumer = Consumer(consumer_config(settings.kafka, group, f"{group}-first"))
    try:
        consumer.assign([TopicPartition(t, p, off) for (t, p), off in wanted.items()])
        deadline = time.monotonic() + _TIMEOUT_S
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    continue
                tp = (msg.topic(), msg.partition())
                if tp in wanted and tp not in found and msg.offset() == wanted[tp]:
                    found[tp] = (msg.timestamp()[1], msg.value() or b"")
                    consumer.pause([TopicPartition(tp[0], tp[1])])
    finally:
        consumer.close()
    return found


@dataclass
class Receipts:
    """Every receipt published on the receipts topic after ``starts``: event id -> sink ->
    the time the sink recorded (``processed_at``, the store had made the event durable)."""

    at: dict[str, dict[str, float]] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    unreadable: int = 0
    read: int = 0


class ReceiptCollector:
    """Reads the receipts topic from given offsets in a thread, without a group commit."""

    def __init__(self, settings: Settings, starts: Mapping[TP, int], group: str) -> None:
        self.receipts = Receipts()
        self._consumer = Consumer(consumer_config(settings.kafka, group, f"{group}-receipts"))
        self._consumer.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()
                               if t == Topic.RECEIPTS.value])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-receipts", daemon=True)
        self._positions: dict[TP, int] = dict(starts)

    def start(self) -> ReceiptCollector:
        self._thread.start()
        return self

    def caught_up(self, ends: Mapping[TP, int]) -> bool:
        with self._lock:
            return all(self._positions.get(tp, 0) >= end for tp, end in ends.items()
                       if tp[0] == Topic.RECEIPTS.value)

    def stop(self) -> Receipts:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()
        return self.receipts

    def _run(self) -> None:
        receipts = self.receipts
        while not self._stop.is_set():
            messages = self._consumer.consume(2000, timeout=0.2)
            for msg in messages:
                if msg.error() is not None:
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is not None and partition is not None and offset is not None:
                    with self._lock:
                        self._positions[(topic, partition)] = offset + 1
                receipts.read += 1
                for item in _receipt_items(msg.value()):
                    try:
                        event_id = str(item["event_id"])
                        sink = str(item["sink"])
                        status = str(item.get("status", "?"))
                        when = item.get("processed_at")
                        seconds = (datetime.fromisoformat(when).timestamp() if when
                                   else msg.timestamp()[1] / 1000)
                    except (KeyError, TypeError, ValueError):
                        receipts.unreadable += 1
                        continue
                    receipts.at.setdefault(event_id, {})[sink] = seconds
                    per_sink = receipts.statuses.setdefault(sink, {})
                    per_sink[status] = per_sink.get(status, 0) + 1


def _receipt_items(value: bytes | None) -> list[dict[str, Any]]:
    """One receipt per record today; a list (or ``{"receipts": [...]}``) is read too, so the
    harness survives receipts being folded into fewer records."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return [{}]
    if isinstance(data, dict) and isinstance(data.get("receipts"), list):
        data = data["receipts"]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    return [data] if isinstance(data, dict) else [{}]
