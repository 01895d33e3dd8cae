"""Topic administration and lag on Kafka (the in-memory broker has the same methods on itself).

Topic names are used as given; callers apply ``KafkaSettings.topic_prefix``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

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


def _group_result(ask: Callable[[float], T], what: str, timeout_s: float) -> T:
    """``ask(remaining seconds)`` for a group request, asked again while the group's
    coordinator is loading or moving, for at most ``timeout_s`` in all."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return ask(max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            err = _kafka_error(exc)
            if (err is None or err.code() not in _COORDINATOR_MOVING
                    or time.monotonic() + delay >= deadline):
                raise BusError(f"{what} failed: {exc.args[0]}") from exc
        except TimeoutError as exc:
            raise BusError(f"{what} timed out after {timeout_s:g}s") from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _raise_partition_errors(partitions: Sequence[TopicPartition]) -> None:
    for tp in partitions:
        if tp.error is not None:
            raise KafkaException(tp.error)


class GroupOffsets:
    """Reads and commits the offsets of one consumer group without joining it.

    Through a consumer of the group that never subscribes, not through the admin client: when
    the group's coordinator answers NOT_COORDINATOR (it moves, or a fresh broker is still
    loading), librdkafka's admin OffsetFetch dereferences a consumer-group handle the admin
    client does not have and the whole process dies with SIGSEGV (librdkafka issue 5040). A
    consumer has that handle and simply asks the new coordinator.
    Commits are accepted only while the group has no member (Kafka rejects a non-member's
    commit to a group in a generation)."""

    def __init__(self, settings: KafkaSettings, group_id: str) -> None:
        self.group_id = group_id
        self._timeout = settings.request_timeout_s
        self._consumer = Consumer({
            **settings.client_config(),
            "group.id": group_id,
            "client.id": "polystream-admin",
            "enable.auto.commit": False,
            "socket.timeout.ms": int(settings.request_timeout_s * 1000),
            "log_level": 4,
        })

    def committed(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """(topic, partition) → committed offset; -1 where the group committed nothing."""
        wanted = [TopicPartition(t, p) for t, p in partitions]
        if not wanted:
            return {}

        def ask(timeout_s: float) -> list[TopicPartition]:
            answer = self._consumer.committed(wanted, timeout=timeout_s)
            _raise_partition_errors(answer)
            return answer

        answer = _group_result(ask, f"committed offsets of {self.group_id}", self._timeout)
        return {(tp.topic, tp.partition): max(tp.offset, -1) for tp in answer}

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit ``offsets`` ((topic, partition) → next offset to read) for the group."""
        wanted = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        if not wanted:
            return

        def ask(_: float) -> None:
            answer = self._consumer.commit(offsets=wanted, asynchronous=False)
            _raise_partition_errors(answer or [])

        _group_result(ask, f"setting the offsets of {self.group_id}", self._timeout)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> GroupOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


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
    known = [t for t in topics if t in counts]
    with GroupOffsets(settings, group_id) as group:
        committed = group.committed((t, p) for t in known for p in range(counts[t]))
    for topic in known:
        n = counts[topic]
        ends = _offsets(admin, topic, n, _LATEST, timeout)
        starts = _offsets(admin, topic, n, _EARLIEST, timeout)
        for p in range(n):
            done = committed.get((topic, p), -1)
            lag[(topic, p)] = max(0, ends[p] - (done if done >= 0 else starts[p]))
    return lag


def start_group_at_end(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> None:
    """Commit, for a group with no member, the current end of every partition of ``topics``:
    the group will read only what is published from now on (a fresh deployment over topics
    that already hold other events)."""
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    counts = _partition_counts(admin, timeout)
    offsets: dict[tuple[str, int], int] = {}
    for topic in topics:
        n = counts.get(topic)
        if n is None:
            raise BusError(f"unknown topic {topic}")
        ends = _offsets(admin, topic, n, _LATEST, timeout)
        offsets.update({(topic, p): ends[p] for p in range(n)})
    with GroupOffsets(settings, group_id) as group:
        group.commit(offsets)


def delete_groups(settings: KafkaSettings, group_ids: Sequence[str]) -> None:
    """Delete consumer groups that have no member left (unknown ones are fine)."""
    if not group_ids:
        return
    timeout = settings.request_timeout_s
    admin = _admin(settings)
    for group in group_ids:
        try:
            _group_result(
                lambda left, group=group: admin.delete_consumer_groups(  # type: ignore[misc]
                    [group], request_timeout=timeout)[group].result(left),
                f"deleting group {group}", timeout)
        except BusError as exc:
            err = _kafka_error(exc.__cause__) if exc.__cause__ else None
            if err is None or err.code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise


def commit_group_offsets(settings: KafkaSettings, group_id: str,
                         offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``offsets`` ((topic, partition) → next offset to read) for a group with no
    member: a replay from that point."""
    with GroupOffsets(settings, group_id) as group:
        group.commit(dict(sorted(offsets.items())))


def committed_total(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> int:
    """The sum of the group's committed offsets over every partition of ``topics`` (a
    partition without one counts 0): it grows exactly when the group commits."""
    counts = _partition_counts(_admin(settings), settings.request_timeout_s)
    wanted = [(t, p) for t in topics for p in range(counts.get(t, 0))]
    with GroupOffsets(settings, group_id) as group:
        return sum(max(0, off) for off in group.committed(wanted).values())
