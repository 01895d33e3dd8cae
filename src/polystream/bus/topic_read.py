"""Read what the topics hold right now: every partition up to its current end offset.

For `polystream verify --from-topics`. A throw-away consumer *assigns* the partitions itself
(no group membership, no rebalance) and never commits, so no deployment's offsets move. The
end offsets are taken once, before reading: records produced meanwhile are not waited for.

Kafka orders records per partition only. The records come back per partition, in the order
every consumer saw them; `merged` interleaves the partitions on a key of the caller's (producer
time first: the order they were published in) without reordering any partition.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from polystream.settings import KafkaSettings

T = TypeVar("T")


class TopicReadError(RuntimeError):
    """The cluster did not answer, or a topic does not exist."""


@dataclass(frozen=True, slots=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


def read_topics(settings: KafkaSettings, topics: Iterable[str], *,
                since: datetime | None = None, timeout_s: float = 60.0,
                progress: Callable[[int, int], None] | None = None
                ) -> dict[tuple[str, int], list[TopicRecord]]:
    """Every record of ``topics`` (from ``since`` when given, else from the beginning) up to
    the end offsets of the moment of the call; ``progress(read, total)`` now and then."""
    consumer = Consumer({
        **settings.client_config(),
        "group.id": f"polystream-verify-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
    })
    try:
        return _read(consumer, settings, list(topics), since, timeout_s, progress)
    except KafkaException as exc:
        raise TopicReadError(f"Kafka {settings.bootstrap_servers}: {exc.args[0]}") from exc
    finally:
        consumer.close()


def _read(consumer: Consumer, settings: KafkaSettings, topics: list[str],
          since: datetime | None, timeout_s: float,
          progress: Callable[[int, int], None] | None
          ) -> dict[tuple[str, int], list[TopicRecord]]:
    timeout = settings.request_timeout_s
    meta = consumer.list_topics(timeout=timeout)
    parts: list[TopicPartition] = []
    for topic in topics:
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise TopicReadError(f"Kafka {settings.bootstrap_servers}: no topic {topic}")
        parts += [TopicPartition(topic, p) for p in sorted(info.partitions)]
    ends: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    for tp in parts:
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        starts[(tp.topic, tp.partition)], ends[(tp.topic, tp.partition)] = low, high
    if since is not None:
        ms = int(since.timestamp() * 1000)
        found = consumer.offsets_for_times([TopicPartition(t.topic, t.partition, ms)
                                            for t in parts], timeout=timeout)
        for tp in found:
            key = (tp.topic, tp.partition)
            # -1: no record at or after the time in this partition.
            starts[key] = ends[key] if tp.offset < 0 else max(tp.offset, starts[key])
    todo = {key for key in ends if ends[key] > starts[key]}
    total = sum(ends[k] - starts[k] for k in todo)
    if not todo:
        return {}
    consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in todo])
    per_partition: dict[tuple[str, int], list[TopicRecord]] = {k: [] for k in todo}
    read = 0
    deadline = time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            left = sum(ends[k] - (per_partition[k][-1].offset + 1 if per_partition[k]
                                  else starts[k]) for k in todo)
            raise TopicReadError(f"Kafka {settings.bootstrap_servers}: {left:,} records not "
                                 f"read after {timeout_s:.0f}s")
        for msg in consumer.consume(1000, timeout=1.0):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            key = (str(msg.topic()), int(msg.partition() or 0))
            offset = int(msg.offset() or 0)
            if key not in todo or offset >= ends[key]:
                continue
            per_partition[key].append(TopicRecord(key[0], key[1], offset,
                                                  msg.timestamp()[1], msg.value() or b""))
            read += 1
            deadline = time.monotonic() + timeout_s
        # Positions, not the last offset seen: compaction and transaction markers leave gaps.
        for tp in consumer.position([TopicPartition(t, p) for t, p in todo]):
            if tp.offset >= ends[(tp.topic, tp.partition)]:
                todo.discard((tp.topic, tp.partition))
        if progress is not None:
            progress(read, total)
    return per_partition


def merged(partitions: Iterable[Sequence[T]], key: Callable[[T], Any]) -> list[T]:
    """One sequence of the partitions' items, smallest key first among the partitions' next
    items; each partition's own order is kept even where its keys are not sorted."""
    return list(heapq.merge(*partitions, key=key))
