"""Topic administration and lag on Kafka (the in-memory broker has the same methods on itself).

Topic names are used as given; callers apply ``KafkaSettings.topic_prefix``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

# The documented import path; the package's stubs just do not re-export these names.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from polystream.bus.ports import BusError, TopicSpec, partitions_difference
from polystream.settings import KafkaSettings

T = TypeVar("T")

_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


def _admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient({
        **settings.client_config(),
        "client.id": "polystream-admin",
        "socket.timeout.ms": int(settings.request_timeout_s * 1000),
        # Warnings and errors only: short-lived admin clients otherwise log a purge notice each.
        "log_level": 4,
    })


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _result(fut: Future[T], what: str, timeout_s: float) -> T:
    try:
        return fut.result(timeout_s)
    except KafkaException as exc:
        raise BusError(f"{what} failed: {exc.args[0]}") from exc
    except TimeoutError as exc:
        raise BusError(f"{what} timed out after {timeout_s:g}s") from exc


# A group's coordinator is briefly unavailable after the broker starts or moves it (on a fresh
# broker, while it loads __consumer_offsets); asking again a moment later succeeds.
_COORDINATOR_MOVING = frozenset({
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
})


def _group_result(issue: Callable[[], Future[T]], what: str, timeout_s: float) -> T:
    """``_result`` of a group request, asked again while its coordinator is loading or moving,
    for at most ``timeout_s`` in all."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return issue().result(max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            err = _kafka_error(exc)
            if (err is None or err.code() not in _COORDINATOR_MOVING
                    or time.monotonic() + delay >= deadline):
                raise BusError(f"{what} failed: {exc.args[0]}") from exc
        except TimeoutError as exc:
            raise BusError(f"{what} timed out after {timeout_s:g}s") from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _partition_counts(admin: AdminClient, timeout_s: float) -> dict[str, int]:
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BusError(f"listing topics failed: {exc.args[0]}") from exc
    return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}


def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec], *,
                  grow_partitions: bool = False) -> list[tuple[str, str]]:
    """Create missing topics; idempotent. Partitions are added to an existing topic only with
    ``grow_partitions``: adding them moves keys to other partitions, so per-key order across
    the change is lost for records still in flight. That is the operator's decision.

    Returns one (topic, action) per spec: "created", "exists", "partitions 3→6" (grown), or
    "exists with N partitions (...)" when the count differs and nothing was changed — a topic
    with more partitions than wanted is never shrunk (Kafka cannot). The config of an existing
    topic is not compared or changed.
    Waits until the broker's metadata shows every topic with its partitions, so a producer started
    right after does not see an unknown topic.
    """
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    existing = _partition_counts(admin, timeout)
    actions: dict[str, str] = {}
    to_create = [s for s in specs if s.name not in existing]
    to_grow = [s for s in specs if s.name in existing and existing[s.name] < s.partitions
               and grow_partitions]

    if to_create:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions,
                      replication_factor=settings.replication_factor, config=dict(s.config))
             for s in to_create],
            operation_timeout=timeout, request_timeout=timeout)
        for spec in to_create:
            try:
                futures[spec.name].result(timeout)
                actions[spec.name] = "created"
            except KafkaException as exc:
                err = _kafka_error(exc)
                if err is None or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BusError(f"creating topic {spec.name} failed: {exc.args[0]}") from exc
                # Created concurrently by another process: it may need growing like any other.
                actions[spec.name] = "exists"
                if grow_partitions:
                    to_grow.append(spec)
        existing = _partition_counts(admin, timeout) if to_grow else existing

    grow = [s for s in to_grow if existing.get(s.name, s.partitions) < s.partitions]
    if grow:
        futures = admin.create_partitions(
            [NewPartitions(s.name, s.partitions) for s in grow],
            operation_timeout=timeout, request_timeout=timeout)
        for spec in grow:
            before = existing[spec.name]
            _result(futures[spec.name], f"growing {spec.name} to {spec.partitions} partitions",
                    timeout)
            actions[spec.name] = f"partitions {before}→{spec.partitions}"

    for spec in specs:
        if spec.name not in actions:
            actions[spec.name] = partitions_difference(existing[spec.name], spec.partitions)
    changed = {s.name for s in grow} | {n for n, a in actions.items() if a == "created"}
    # What this call created or grew must be visible with its partitions; the rest must exist.
    wanted = {s.name: s.partitions if s.name in changed else existing.get(s.name, 1)
              for s in specs}
    _wait_for_metadata(admin, wanted, timeout)
    return [(s.name, actions[s.name]) for s in specs]


def _wait_for_metadata(admin: AdminClient, wanted: dict[str, int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        have = _partition_counts(admin, timeout_s)
        missing = {n: p for n, p in wanted.items() if have.get(n, 0) < p}
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise BusError(f"topics not visible after {timeout_s:g}s: {sorted(missing)}")
        time.sleep(0.1)


def delete_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Delete topics (missing ones are ignored). Deletion completes asynchronously on the broker:
    re-creating the same name right away may fail."""
    names = list(names)
    if not names:
        return
    timeout = settings.request_timeout_s
    # Keep the client referenced until the futures resolve: a collected AdminClient fails them.
    admin = _admin(settings)
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            err = _kafka_error(exc)
            if err is None or err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BusError(f"deleting topic {name} failed: {exc.args[0]}") from exc


# Leadership of a new (or moving) partition settles a moment after its metadata appears.
_RETRIABLE_OFFSETS = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION,
                                KafkaError.LEADER_NOT_AVAILABLE,
                                KafkaError.UNKNOWN_TOPIC_OR_PART})


def _offsets(admin: AdminClient, topic: str, partitions: int, spec: OffsetSpec,
             timeout_s: float) -> dict[int, int]:
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        futures: dict[Any, Future[Any]] = admin.list_offsets(
            {TopicPartition(topic, p): spec for p in range(partitions)},
            request_timeout=timeout_s)
        try:
            return {tp.partition: _result(fut, f"offsets of {topic}[{tp.partition}]",
                                          timeout_s).offset
                    for tp, fut in futures.items()}
        except BusError as exc:
            err = _kafka_error(exc.__cause__) if exc.__cause__ else None
            if err is None or err.code() not in _RETRIABLE_OFFSETS or (
                    time.monotonic() + delay > deadline):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """Partition → offset the next message will get (the high watermark)."""
    admin = _admin(settings)
    counts = _partition_counts(admin, settings.request_timeout_s)
    if topic not in counts:
        raise BusError(f"unknown topic {topic}")
    return _offsets(admin, topic, counts[topic], _LATEST, settings.request_timeout_s)


def group_lag(settings: KafkaSettings, group_id: str,
              topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) → records the group has not committed yet. A partition without a
    committed offset counts from its first retained record (``auto.offset.reset=earliest``).
    Unknown topics are skipped."""
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    counts = _partition_counts(admin, timeout)
    lag: dict[tuple[str, int], int] = {}
    for topic in topics:
        n = counts.get(topic)
        if n is None:
            continue
        ends = _offsets(admin, topic, n, _LATEST, timeout)
        starts = _offsets(admin, topic, n, _EARLIEST, timeout)
        request = [ConsumerGroupTopicPartitions(group_id,
                                                [TopicPartition(topic, p) for p in range(n)])]
        result = _group_result(
            lambda request=request: admin.list_consumer_group_offsets(  # type: ignore[misc]
                request, request_timeout=timeout)[group_id],
            f"committed offsets of {group_id}", timeout)
        committed = {tp.partition: tp.offset for tp in result.topic_partitions or ()}
        for p in range(n):
            done = committed.get(p, -1)
            lag[(topic, p)] = max(0, ends[p] - (done if done >= 0 else starts[p]))
    return lag


def start_group_at_end(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> None:
    """Commit, for a group with no member, the current end of every partition of ``topics``:
    the group will read only what is published from now on (a fresh deployment over topics
    that already hold other events)."""
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    counts = _partition_counts(admin, timeout)
    offsets = []
    for topic in topics:
        n = counts.get(topic)
        if n is None:
            raise BusError(f"unknown topic {topic}")
        ends = _offsets(admin, topic, n, _LATEST, timeout)
        offsets += [TopicPartition(topic, p, ends[p]) for p in range(n)]
    request = [ConsumerGroupTopicPartitions(group_id, offsets)]
    _group_result(
        lambda: admin.alter_consumer_group_offsets(request, request_timeout=timeout)[group_id],
        f"setting the offsets of {group_id}", timeout)


def delete_groups(settings: KafkaSettings, group_ids: Sequence[str]) -> None:
    """Delete consumer groups that have no member left (unknown ones are fine)."""
    if not group_ids:
        return
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    for group, fut in admin.delete_consumer_groups(list(group_ids),
                                                   request_timeout=timeout).items():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            err = _kafka_error(exc)
            if err is None or err.code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise BusError(f"deleting group {group} failed: {exc.args[0]}") from exc


def commit_group_offsets(settings: KafkaSettings, group_id: str,
                         offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``offsets`` ((topic, partition) → next offset to read) for a group with no
    member: a replay from that point."""
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    request = [ConsumerGroupTopicPartitions(
        group_id, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])]
    _group_result(
        lambda: admin.alter_consumer_group_offsets(request, request_timeout=timeout)[group_id],
        f"setting the offsets of {group_id}", timeout)


def committed_total(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> int:
    """The sum of the group's committed offsets over every partition of ``topics`` (a
    partition without one counts 0): it grows exactly when the group commits."""
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    counts = _partition_counts(admin, timeout)
    total = 0
    for topic in topics:
        n = counts.get(topic)
        if n is None:
            continue
        request = [ConsumerGroupTopicPartitions(group_id,
                                                [TopicPartition(topic, p) for p in range(n)])]
        result = _group_result(
            lambda request=request: admin.list_consumer_group_offsets(  # type: ignore[misc]
                request, request_timeout=timeout)[group_id],
            f"committed offsets of {group_id}", timeout)
        total += sum(max(0, tp.offset) for tp in result.topic_partitions or ())
    return total
