"""What producers and consumers of events need from a bus, whatever the bus is.

Both implementations (`KafkaEventPublisher`/`KafkaEventConsumer` and the in-memory ones) pass the
same contract tests in `tests/contract/test_bus_contract.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class BusError(RuntimeError):
    """The bus could not do what was asked (message says what and why)."""


class PublishError(BusError):
    """An event was not acknowledged by the bus; the caller must not report it as accepted."""


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    """One message as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def partitions_difference(have: int, wanted: int) -> str:
    """The action reported for an existing topic that was left as it is."""
    if have == wanted:
        return "exists"
    if have > wanted:
        return (f"exists with {have} partitions (wanted {wanted}; partitions are never "
                "removed)")
    return (f"exists with {have} partitions (wanted {wanted}; not grown: adding partitions "
            "moves keys, rerun with --grow-partitions to do it)")


class EventPublisher(Protocol):
    def publish(
        self, topic: str, key: str, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> Future[Delivered]:
        """Queue one message; the future resolves when the bus acknowledged it (acks=all) or
        fails with PublishError. Raises PublishError at once when the queue is full/closed."""
        ...

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every queued message; raise PublishError if any was not delivered since the
        previous flush (each failure is raised once) or some are still queued at the timeout."""
        ...

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, then release the connection."""
        ...


class PublisherStats(NamedTuple):
    """Cumulative counts of one publisher, over both publish paths."""

    acked: int
    failed: int
    first_error: str | None


class BulkEventPublisher(EventPublisher, Protocol):
    """A publisher with a cheap fire-and-count path for bulk producers (the simulator)."""

    def publish_fire(self, topic: str, key: str, value: bytes,
                     headers: Mapping[str, bytes] | None = None) -> None:
        """Queue one message without a future: acks and failures are only counted (`stats`),
        and `flush` raises PublishError if any failed since the previous flush. Raises
        PublishError at once when the queue stays full or the publisher is closed."""
        ...

    def stats(self) -> PublisherStats: ...


class ProgressMark(NamedTuple):
    """A point in one partition's log, by record timestamp (see `processed_before`)."""

    topic: str
    partition: int
    timestamp_ms: int


PartitionsCallback = Callable[[list[tuple[str, int]]], None]


class EventConsumer(Protocol):
    """A member of one consumer group. Offsets are committed only when `commit` is called.

    Drive it from one thread: poll a batch, make its effects durable (idempotently), commit it;
    on a failed batch call `seek_to_committed` instead. Rebalances (and the optional
    on_assign/on_revoke hooks of the implementations) happen only inside `poll_batch`, so they
    never interrupt a batch; whatever was not committed is delivered again to the partition's
    next owner (at-least-once). A `BusError` from `commit` means "not committed": keep polling.
    """

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def commit(self, records: Sequence[Record]) -> None:
        """Mark every record up to and including each partition's highest offset in
        ``records`` as processed (synchronously, so a crash right after loses nothing)."""
        ...

    def seek_to_committed(self) -> None:
        """Rewind every assigned partition to its committed offset (used after a failed
        batch: the records will be delivered again)."""
        ...

    def assignment(self) -> list[tuple[str, int]]: ...

    def partition_of(self, topic: str, key: str) -> int:
        """The partition of ``topic`` that records keyed ``key`` go to (Kafka's default
        partitioner, which every producer of ours uses)."""
        ...

    def processed_before(self, marks: Sequence[ProgressMark]) -> list[bool]:
        """For each mark: has this consumer's *group* committed every record of the mark's
        partition whose timestamp is before ``timestamp_ms``? Also true when no such record is
        left uncommitted because the group has committed the whole partition. It reads the
        group's committed offsets, so it sees the progress of every member of the group, not
        only this one. Raises BusError when the bus cannot answer now."""
        ...

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Stop fetching these (assigned) partitions until `resume`; other partitions keep
        flowing. A rebalance forgets the pause of partitions that move."""
        ...

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None: ...

    def close(self) -> None: ...
