"""The bus contract, written once and run against both implementations.

What the workers rely on (DESIGN.md §4): per-key order, commit-driven at-least-once delivery,
redelivery of whatever was not committed (to the next owner or after a seek), independent groups,
partition sharing inside a group, and publish failures that reach the caller.
Every wait is bounded; Kafka waits are the ones that need the bounds (group joins, rebalances).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait

import pytest

from polystream.bus import admin as kafka_admin
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.memory import (
    InMemoryBroker,
    InMemoryEventConsumer,
    InMemoryEventPublisher,
)
from polystream.bus.partitioner import partition_for
from polystream.bus.ports import (
    BulkEventPublisher,
    Delivered,
    EventConsumer,
    PartitionsCallback,
    ProgressMark,
    PublishError,
    Record,
    TopicSpec,
)
from polystream.settings import Settings

WAIT_S = 60.0  # upper bound of any wait; the Kafka ones take 1-5 s in practice
POLL_S = 0.2


class Harness:
    """What a contract test needs from a bus, whichever it is."""

    kind: str

    def __init__(self, unique: str) -> None:
        self.unique = unique
        self._topics: list[str] = []
        self._closers: list[Callable[[], None]] = []
        self._n = 0

    def name(self, what: str) -> str:
        self._n += 1
        return f"contract-{what}-{self.unique}-{self._n}"

    def topic(self, partitions: int = 6) -> str:
        name = self.name("t")
        self._topics.append(name)
        assert self.ensure_topics([TopicSpec(name, partitions)]) == [(name, "created")]
        return name

    def remember_topic(self, name: str) -> None:
        self._topics.append(name)

    def publisher(self) -> BulkEventPublisher:
        pub = self._publisher()
        self._closers.append(lambda: pub.close(5))
        return pub

    def consumer(self, group: str, topics: list[str], *,
                 on_assign: PartitionsCallback | None = None,
                 on_revoke: PartitionsCallback | None = None) -> EventConsumer:
        con = self._consumer(group, topics, on_assign, on_revoke)
        self._closers.append(con.close)
        return con

    def close(self) -> None:
        for closer in reversed(self._closers):
            # The failure tests leave undelivered messages behind on purpose.
            with contextlib.suppress(PublishError):
                closer()
        self._delete_topics(self._topics)

    # -- per implementation ---------------------------------------------------------------------

    def ensure_topics(self, specs: list[TopicSpec], *,
                      grow_partitions: bool = False) -> list[tuple[str, str]]:
        raise NotImplementedError

    def end_offsets(self, topic: str) -> dict[int, int]:
        raise NotImplementedError

    def group_lag(self, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
        raise NotImplementedError

    def failing_publisher(self) -> tuple[BulkEventPublisher, str]:
        """A publisher and a topic such that the next two publishes fail to be delivered."""
        raise NotImplementedError

    def _publisher(self) -> BulkEventPublisher:
        raise NotImplementedError

    def _consumer(self, group: str, topics: list[str], on_assign: PartitionsCallback | None,
                  on_revoke: PartitionsCallback | None) -> EventConsumer:
        raise NotImplementedError

    def _delete_topics(self, names: list[str]) -> None:
        raise NotImplementedError


class MemoryHarness(Harness):
    kind = "memory"

    def __init__(self, unique: str) -> None:
        super().__init__(unique)
        self.broker = InMemoryBroker(auto_create_topics=False)

    def ensure_topics(self, specs: list[TopicSpec], *,
                      grow_partitions: bool = False) -> list[tuple[str, str]]:
        return self.broker.ensure_topics(specs, grow_partitions=grow_partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.broker.end_offsets(topic)

    def group_lag(self, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
        return self.broker.group_lag(group, topics)

    def failing_publisher(self) -> tuple[BulkEventPublisher, str]:
        self.broker.fail_next_publishes(2, "broker said no")
        return self.publisher(), self.topic(1)

    def _publisher(self) -> BulkEventPublisher:
        return InMemoryEventPublisher(self.broker)

    def _consumer(self, group: str, topics: list[str], on_assign: PartitionsCallback | None,
                  on_revoke: PartitionsCallback | None) -> EventConsumer:
        return InMemoryEventConsumer(self.broker, group, topics, client_id=group,
                                     on_assign=on_assign, on_revoke=on_revoke)

    def _delete_topics(self, names: list[str]) -> None:
        self.broker.delete_topics(names)


class KafkaHarness(Harness):
    kind = "kafka"

    def __init__(self, unique: str, settings: Settings) -> None:
        super().__init__(unique)
        self.settings = settings.kafka

    def ensure_topics(self, specs: list[TopicSpec], *,
                      grow_partitions: bool = False) -> list[tuple[str, str]]:
        return kafka_admin.ensure_topics(self.settings, specs, grow_partitions=grow_partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return kafka_admin.end_offsets(self.settings, topic)

    def group_lag(self, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
        return kafka_admin.group_lag(self.settings, group, topics)

    def failing_publisher(self) -> tuple[BulkEventPublisher, str]:
        # Auto-creation is off, so a topic nobody created never gets a leader: librdkafka keeps
        # the messages until message.timeout.ms and then fails them.
        pub = KafkaEventPublisher(self.settings, client_id=self.name("failing"),
                                  extra={"message.timeout.ms": 3000})
        self._closers.append(lambda: pub.close(5))
        return pub, self.name("missing")

    def _publisher(self) -> BulkEventPublisher:
        return KafkaEventPublisher(self.settings, client_id=self.name("pub"))

    def _consumer(self, group: str, topics: list[str], on_assign: PartitionsCallback | None,
                  on_revoke: PartitionsCallback | None) -> EventConsumer:
        return KafkaEventConsumer(self.settings, group_id=group, topics=topics,
                                  client_id=self.name("con"), on_assign=on_assign,
                                  on_revoke=on_revoke)

    def _delete_topics(self, names: list[str]) -> None:
        kafka_admin.delete_topics(self.settings, names)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.stack)])
def bus(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Iterator[Harness]:
    harness: Harness = (MemoryHarness(unique) if request.param == "memory"
                        else KafkaHarness(unique, settings))
    try:
        yield harness
    finally:
        harness.close()


# -- helpers -------------------------------------------------------------------------------------

Key = tuple[int, int]  # (partition, offset): a record's identity within one topic


def publish_all(pub: BulkEventPublisher, topic: str, n: int, keys: int = 20) -> list[Delivered]:
    """n messages, key k{i % keys}, value "k:seq" with seq counting per key; waits for acks."""
    futures = [pub.publish(topic, f"k{i % keys}", f"k{i % keys}:{i // keys}".encode())
               for i in range(n)]
    pub.flush(30)
    return [f.result(0) for f in futures]


def consume(consumers: Sequence[EventConsumer], until: Callable[[], bool], *,
            commit: bool = True, timeout_s: float = WAIT_S,
            sink: dict[int, list[Record]] | None = None) -> dict[int, list[Record]]:
    """Poll every consumer in turn until `until()` or the deadline; returns records per consumer
    index (also into `sink`, so `until` can look at them)."""
    got = sink if sink is not None else {}
    for i in range(len(consumers)):
        got.setdefault(i, [])
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"timed out; got {[len(v) for v in got.values()]}"
        for i, con in enumerate(consumers):
            batch = con.poll_batch(500, POLL_S)
            if batch:
                got[i].extend(batch)
                if commit:
                    con.commit(batch)
    return got


def consume_n(con: EventConsumer, n: int, *, commit: bool = True) -> list[Record]:
    sink: dict[int, list[Record]] = {}
    return consume([con], lambda: len(sink.get(0, ())) >= n, commit=commit, sink=sink)[0]


def settle(consumers: Sequence[EventConsumer], partitions: set[tuple[str, int]]) -> list[Record]:
    """Poll until the members' assignments are disjoint, non-empty and cover `partitions`."""

    def settled() -> bool:
        owned = [set(c.assignment()) for c in consumers]
        return (all(owned) and set().union(*owned) == partitions
                and sum(map(len, owned)) == len(partitions))

    got = consume(consumers, settled, commit=False)
    return [r for records in got.values() for r in records]


def ids(records: Sequence[Record]) -> list[Key]:
    return [(r.partition, r.offset) for r in records]


def all_partitions(topic: str, n: int = 6) -> set[tuple[str, int]]:
    return {(topic, p) for p in range(n)}


# -- the contract --------------------------------------------------------------------------------

def test_same_key_same_partition_and_order_per_key(bus: Harness) -> None:
    topic = bus.topic(6)
    pub = bus.publisher()
    for i in range(500):  # the fire path must keep order just the same
        pub.publish_fire(topic, f"k{i % 20}", f"k{i % 20}:{i // 20}".encode())
    pub.flush(30)
    assert pub.stats().failed == 0
    records = consume_n(bus.consumer(bus.name("g"), [topic]), 500)

    partitions: dict[bytes, set[int]] = defaultdict(set)
    sequences: dict[bytes, list[int]] = defaultdict(list)
    for rec in records:
        assert rec.key is not None and rec.value is not None
        partitions[rec.key].add(rec.partition)
        sequences[rec.key].append(int(rec.value.split(b":")[1]))
    assert len(records) == 500
    # Both buses hash keys with Kafka's murmur2: the partition is predictable and the same.
    assert {k: p for k, p in partitions.items()} == {
        k: {partition_for(k, 6)} for k in partitions}
    assert all(seq == list(range(25)) for seq in sequences.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1  # keys do spread


def test_committed_records_are_consumed_once_by_the_group(bus: Harness) -> None:
    topic, group = bus.topic(6), bus.name("g")
    publish_all(bus.publisher(), topic, 300)
    assert bus.group_lag(group, [topic]) == {tp: n for tp, n in _per_partition(bus, topic).items()}
    first = bus.consumer(group, [topic])
    records = consume_n(first, 300)
    assert len(records) == 300 and len(set(ids(records))) == 300
    assert bus.group_lag(group, [topic]) == dict.fromkeys(all_partitions(topic), 0)
    first.close()

    second = bus.consumer(group, [topic])
    again = settle([second], all_partitions(topic))
    # Settled and still polling: anything committed must not come back.
    again += consume([second], _after(1.0), commit=False)[0]
    assert again == []


def test_uncommitted_records_go_to_the_next_member(bus: Harness) -> None:
    topic, group = bus.topic(6), bus.name("g")
    publish_all(bus.publisher(), topic, 300)
    first = bus.consumer(group, [topic])
    records = consume_n(first, 300, commit=False)
    assert len(records) == 300
    # Commit a prefix of each partition: from offset 20 on, nothing is committed.
    done = [r for r in records if r.offset < 20]
    first.commit(done)
    expected = {(r.partition, r.offset) for r in records if r.offset >= 20}
    assert expected  # the test means something only if there is a tail
    first.close()

    second = bus.consumer(group, [topic])
    sink: dict[int, list[Record]] = {}
    consume([second], lambda: len(sink.get(0, ())) >= len(expected), sink=sink)
    consume([second], _after(0.5), sink=sink)  # and nothing more than that
    assert sorted(ids(sink[0])) == sorted(expected)


def test_a_joining_member_takes_over_uncommitted_records(bus: Harness) -> None:
    topic, group = bus.topic(6), bus.name("g")
    delivered = publish_all(bus.publisher(), topic, 300)
    a = bus.consumer(group, [topic])
    held = consume_n(a, 300, commit=False)  # a is "still working" on all of them
    b = bus.consumer(group, [topic])
    sink: dict[int, list[Record]] = {}

    def b_has_its_share() -> bool:
        owned_a, owned_b = set(a.assignment()), set(b.assignment())
        if not owned_a or not owned_b or owned_a | owned_b != all_partitions(topic):
            return False
        share = [d for d in delivered if (topic, d.partition) in owned_b]
        return len(sink.get(1, ())) >= len(share)

    consume([a, b], b_has_its_share, commit=False, sink=sink)
    consume([a, b], _after(0.5), commit=False, sink=sink)
    owned_b = set(b.assignment())
    assert sink[0] == []  # a keeps its partitions' positions: nothing comes twice to a
    assert sorted(ids(sink[1])) == sorted(
        (d.partition, d.offset) for d in delivered if (topic, d.partition) in owned_b)

    # a's late commit covers only what it still owns; b's partitions stay b's to commit.
    a.commit(held)
    lag = bus.group_lag(group, [topic])
    per_partition = _per_partition(bus, topic)
    assert {tp: n for tp, n in lag.items() if n} == {tp: per_partition[tp] for tp in owned_b}


def test_seek_to_committed_redelivers_the_uncommitted_tail(bus: Harness) -> None:
    topic = bus.topic(6)
    publish_all(bus.publisher(), topic, 300)
    con = bus.consumer(bus.name("g"), [topic])
    records = consume_n(con, 300, commit=False)
    con.commit([r for r in records if r.offset < 10])
    expected = sorted((r.partition, r.offset) for r in records if r.offset >= 10)

    con.seek_to_committed()
    sink: dict[int, list[Record]] = {}
    consume([con], lambda: len(sink.get(0, ())) >= len(expected), commit=False, sink=sink)
    consume([con], _after(0.5), commit=False, sink=sink)
    assert sorted(ids(sink[0])) == expected
    # Per partition the tail comes back in order.
    by_partition: dict[int, list[int]] = defaultdict(list)
    for rec in sink[0]:
        by_partition[rec.partition].append(rec.offset)
    assert all(offs == sorted(offs) for offs in by_partition.values())

    # Nothing committed at all: seek goes back to the beginning (auto.offset.reset=earliest).
    other = bus.consumer(bus.name("g"), [topic])
    first_pass = consume_n(other, 300, commit=False)
    other.seek_to_committed()
    second_pass = consume_n(other, 300, commit=False)
    assert sorted(ids(second_pass)) == sorted(ids(first_pass))


def test_two_groups_each_get_every_message(bus: Harness) -> None:
    topic = bus.topic(6)
    delivered = publish_all(bus.publisher(), topic, 200)
    a = bus.consumer(bus.name("ga"), [topic])
    b = bus.consumer(bus.name("gb"), [topic])
    sink: dict[int, list[Record]] = {}
    consume([a, b], lambda: len(sink.get(0, ())) >= 200 and len(sink.get(1, ())) >= 200,
            sink=sink)
    want = sorted((d.partition, d.offset) for d in delivered)
    assert sorted(ids(sink[0])) == want
    assert sorted(ids(sink[1])) == want


def test_members_of_one_group_split_the_partitions(bus: Harness) -> None:
    topic, group = bus.topic(6), bus.name("g")
    a = bus.consumer(group, [topic])
    b = bus.consumer(group, [topic])
    assert settle([a, b], all_partitions(topic)) == []
    owned_a, owned_b = set(a.assignment()), set(b.assignment())
    assert owned_a.isdisjoint(owned_b) and owned_a | owned_b == all_partitions(topic)

    delivered = publish_all(bus.publisher(), topic, 600, keys=60)
    sink: dict[int, list[Record]] = {}
    consume([a, b], lambda: len(sink.get(0, ())) + len(sink.get(1, ())) >= 600, sink=sink)
    consume([a, b], _after(0.5), sink=sink)
    assert {(r.topic, r.partition) for r in sink[0]} <= owned_a
    assert {(r.topic, r.partition) for r in sink[1]} <= owned_b
    got = ids(sink[0]) + ids(sink[1])
    assert len(got) == len(set(got)) == 600  # no overlap, no loss
    assert set(got) == {(d.partition, d.offset) for d in delivered}


def test_rebalance_hooks_report_assigned_and_revoked_partitions(bus: Harness) -> None:
    topic = bus.topic(4)
    assigned: list[tuple[str, int]] = []
    revoked: list[tuple[str, int]] = []
    con = bus.consumer(bus.name("g"), [topic], on_assign=assigned.extend,
                       on_revoke=revoked.extend)
    settle([con], all_partitions(topic, 4))
    assert sorted(assigned) == sorted(all_partitions(topic, 4))
    con.close()
    assert sorted(revoked) == sorted(all_partitions(topic, 4))


def test_headers_round_trip(bus: Harness) -> None:
    topic = bus.topic(1)
    pub = bus.publisher()
    headers = {"event-type": b"user.registered", "schema": b"3", "bin": bytes(range(256))}
    pub.publish(topic, "a", b"with", headers).result(30)
    pub.publish_fire(topic, "a", b"fire", headers)
    pub.publish(topic, "a", b"without").result(30)
    pub.flush(30)
    records = consume_n(bus.consumer(bus.name("g"), [topic]), 3)
    assert [r.value for r in records] == [b"with", b"fire", b"without"]
    assert dict(records[0].headers) == headers
    assert dict(records[1].headers) == headers
    assert dict(records[2].headers) == {}
    assert all(r.timestamp_ms > 0 and r.key == b"a" for r in records)


def test_publish_future_resolves_with_partition_and_offset(bus: Harness) -> None:
    topic = bus.topic(6)
    pub = bus.publisher()
    callbacks: list[Delivered] = []
    done = threading.Event()
    futures = [pub.publish(topic, f"user-{i}", b"x") for i in range(30)]
    # Waiting, callbacks and concurrent.futures.wait all work on these futures.
    def on_done(fut: Future[Delivered]) -> None:
        callbacks.append(fut.result())
        done.set()

    futures[-1].add_done_callback(on_done)
    finished, pending = wait(futures, timeout=30)
    assert not pending and done.wait(30)
    results = [f.result(0) for f in finished]
    assert callbacks == [futures[-1].result()]
    for i, fut in enumerate(futures):
        d = fut.result(0)
        assert d.topic == topic and d.offset >= 0
        assert d.partition == partition_for(f"user-{i}".encode(), 6)
    assert len({(d.partition, d.offset) for d in results}) == 30

    records = consume_n(bus.consumer(bus.name("g"), [topic]), 30)
    by_id = {(r.partition, r.offset): r.key for r in records}
    assert {(d.partition, d.offset): f"user-{i}".encode()
            for i, d in enumerate(f.result() for f in futures)} == by_id


def test_flush_raises_when_delivery_fails(bus: Harness) -> None:
    pub, topic = bus.failing_publisher()
    fut = pub.publish(topic, "k", b"lost")
    pub.publish_fire(topic, "k", b"lost too")
    started = time.monotonic()
    with pytest.raises(PublishError, match=r"2 message\(s\) not delivered"):
        pub.flush(15)
    assert time.monotonic() - started < 15
    with pytest.raises(PublishError):
        fut.result(0)
    acked, failed, first_error = pub.stats()
    assert (acked, failed) == (0, 2) and first_error and topic in first_error
    pub.flush(5)  # each failure is raised once, not on every later flush


def test_closed_publisher_refuses_at_once(bus: Harness) -> None:
    topic = bus.topic(1)
    pub = bus.publisher()
    pub.publish(topic, "k", b"v").result(30)
    pub.close(10)
    with pytest.raises(PublishError, match="closed"):
        pub.publish(topic, "k", b"v")
    with pytest.raises(PublishError, match="closed"):
        pub.publish_fire(topic, "k", b"v")
    pub.close(1)  # idempotent


def test_ensure_topics_is_idempotent_and_grows_partitions_only_when_asked(bus: Harness) -> None:
    a, b = bus.name("ensure-a"), bus.name("ensure-b")
    bus.remember_topic(a)
    bus.remember_topic(b)
    specs = [TopicSpec(a, 3), TopicSpec(b, 2, {"retention.ms": "3600000"})]
    assert bus.ensure_topics(specs) == [(a, "created"), (b, "created")]
    assert bus.ensure_topics(specs) == [(a, "exists"), (b, "exists")]
    # Adding partitions moves keys: reported, never done silently.
    [(name, action)] = bus.ensure_topics([TopicSpec(a, 6)])
    assert name == a and action.startswith("exists with 3 partitions (wanted 6; not grown")
    assert len(bus.end_offsets(a)) == 3
    assert bus.ensure_topics([TopicSpec(a, 6)], grow_partitions=True) == [(a, "partitions 3→6")]
    shrink = bus.ensure_topics([TopicSpec(a, 2)])
    assert shrink[0][0] == a and shrink[0][1].startswith("exists with 6 partitions")
    # The grown topic is usable at once, new partitions included.
    pub = bus.publisher()
    parts = {pub.publish(a, f"k{i}", b"v").result(30).partition for i in range(60)}
    assert parts == set(range(6))


def _per_partition(bus: Harness, topic: str) -> dict[tuple[str, int], int]:
    return {(topic, p): end for p, end in bus.end_offsets(topic).items()}


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


# -- Kafka only: the local queue (the in-memory bus has none) -------------------------------------

@pytest.mark.stack
def test_kafka_full_local_queue_waits_for_room(settings: Settings, unique: str) -> None:
    harness = KafkaHarness(unique, settings)
    try:
        topic = harness.topic(3)
        with KafkaEventPublisher(settings.kafka, client_id=harness.name("tiny"),
                                 extra={"queue.buffering.max.messages": 20}) as pub:
            for i in range(2_000):
                pub.publish_fire(topic, f"k{i}", b"v")
            fut = pub.publish(topic, "last", b"v")
            pub.flush(30)
            assert pub.stats().acked == 2_001 and fut.result(0).offset >= 0
    finally:
        harness.close()


@pytest.mark.stack
def test_kafka_queue_that_stays_full_is_refused(settings: Settings, unique: str) -> None:
    harness = KafkaHarness(unique, settings)
    missing = harness.name("missing")
    pub = KafkaEventPublisher(settings.kafka, client_id=harness.name("stuck"),
                              extra={"queue.buffering.max.messages": 5,
                                     "message.timeout.ms": 3000},
                              queue_full_timeout_s=0.3)
    try:
        for _ in range(5):
            pub.publish_fire(missing, "k", b"v")
        started = time.monotonic()
        with pytest.raises(PublishError, match="local queue still full"):
            pub.publish_fire(missing, "k", b"v")
        assert time.monotonic() - started < 2
    finally:
        with pytest.raises(PublishError, match=r"5 message\(s\) not delivered"):
            pub.close(10)


# -- progress, partition lookup, pause ----------------------------------------------------------

def test_partition_of_is_where_the_publisher_puts_a_key(bus: Harness) -> None:
    topic = bus.topic(6)
    delivered = publish_all(bus.publisher(), topic, 40, keys=20)
    con = bus.consumer(bus.name("g"), [topic])
    for i, d in enumerate(delivered):
        assert con.partition_of(topic, f"k{i % 20}") == d.partition


def test_processed_before_follows_the_groups_commits_by_record_time(bus: Harness) -> None:
    topic, group = bus.topic(1), bus.name("g")
    pub = bus.publisher()
    first = [pub.publish(topic, "k", b"early") for _ in range(3)]
    pub.flush(30)
    time.sleep(0.05)
    between = time.time_ns() // 1_000_000
    time.sleep(0.05)
    later = [pub.publish(topic, "k", b"late") for _ in range(3)]
    pub.flush(30)
    assert [f.result(0).offset for f in first + later] == list(range(6))
    con = bus.consumer(group, [topic])
    before, after = ProgressMark(topic, 0, between), ProgressMark(topic, 0, 2**62)
    # Nothing committed: records exist before both times.
    assert con.processed_before([before, after]) == [False, False]
    records = consume_n(con, 6, commit=False)
    con.commit(records[:3])
    # Every record before `between` is committed; not every record overall.
    assert con.processed_before([before, after]) == [True, False]
    con.commit(records)
    assert con.processed_before([after, before]) == [True, True]
    # A second member of the group sees the group's progress, not only its own.
    other = bus.consumer(group, [topic])
    assert other.processed_before([after]) == [True]


def test_processed_before_an_empty_partition_is_true(bus: Harness) -> None:
    topic = bus.topic(2)
    con = bus.consumer(bus.name("g"), [topic])
    assert con.processed_before([ProgressMark(topic, 1, time.time_ns() // 1_000_000)]) == [True]


def test_a_paused_partition_is_not_fetched_until_resumed(bus: Harness) -> None:
    topic, group = bus.topic(2), bus.name("g")
    con = bus.consumer(group, [topic])
    settle([con], all_partitions(topic, 2))
    pub = bus.publisher()
    by_partition: dict[int, list[str]] = defaultdict(list)
    for i in range(40):
        key = f"k{i}"
        by_partition[con.partition_of(topic, key)].append(key)
    assert by_partition[0] and by_partition[1]
    con.pause([(topic, 0)])
    for key in by_partition[0] + by_partition[1]:
        pub.publish_fire(topic, key, b"x")
    pub.flush(30)
    got = consume([con], _after(2.0), commit=False)[0]
    assert {r.partition for r in got} == {1}
    assert len(got) == len(by_partition[1])
    con.resume([(topic, 0)])
    rest = consume_n(con, len(by_partition[0]), commit=False)
    assert {r.partition for r in rest} == {0}


# -- Kafka only: a group's offsets, read and set from outside the group ---------------------------

@pytest.mark.stack
def test_kafka_group_offsets_round_trip_without_joining(settings: Settings, unique: str) -> None:
    harness = KafkaHarness(unique, settings)
    try:
        topic = harness.topic(3)
        group = harness.name("outside")
        wanted = [(topic, p) for p in range(3)]
        with kafka_admin.GroupOffsets(settings.kafka, group) as offsets:
            # A group that never committed: every partition reads as -1, not as an error.
            assert offsets.committed(wanted) == dict.fromkeys(wanted, -1)
            offsets.commit({(topic, 0): 5, (topic, 2): 7})
            assert offsets.committed(wanted) == {(topic, 0): 5, (topic, 1): -1, (topic, 2): 7}
        # group_lag sees the same commits through its own client (end offsets are 0 here, so a
        # commit beyond the end counts as no lag, never as negative).
        assert harness.group_lag(group, [topic]) == dict.fromkeys(wanted, 0)
        # start_group_at_end positions a fresh group at the current end of each partition.
        pub = harness.publisher()
        for i in range(30):
            pub.publish_fire(topic, f"k{i}", b"v")
        pub.flush(30)
        ends = harness.end_offsets(topic)
        fresh = harness.name("fresh")
        kafka_admin.start_group_at_end(settings.kafka, fresh, [topic])
        with kafka_admin.GroupOffsets(settings.kafka, fresh) as offsets:
            assert offsets.committed(wanted) == {(topic, p): ends[p] for p in range(3)}
        assert harness.group_lag(fresh, [topic]) == dict.fromkeys(wanted, 0)
    finally:
        harness.close()
