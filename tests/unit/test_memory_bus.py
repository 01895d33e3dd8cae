"""What only the in-memory bus has to prove (the shared behaviour is in tests/contract)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from polystream.bus.memory import (
    InMemoryBroker,
    InMemoryEventConsumer,
    InMemoryEventPublisher,
)
from polystream.bus.partitioner import murmur2, partition_for
from polystream.bus.ports import PublishError, Record, TopicSpec


def _signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


@pytest.mark.parametrize(("data", "expected"), [
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_is_kafkas(data: bytes, expected: int) -> None:
    assert _signed(murmur2(data)) == expected


def test_partition_for_is_stable_and_in_range() -> None:
    for n in (1, 3, 6, 12):
        parts = [partition_for(f"user-{i}".encode(), n) for i in range(500)]
        assert all(0 <= p < n for p in parts)
        assert parts == [partition_for(f"user-{i}".encode(), n) for i in range(500)]
        assert len(set(parts)) == n  # 500 keys reach every partition


def _broker(partitions: int = 6, topic: str = "t") -> InMemoryBroker:
    broker = InMemoryBroker(partitions, auto_create_topics=False)
    broker.ensure_topics([TopicSpec(topic, partitions)])
    return broker


def _drain(con: InMemoryEventConsumer, timeout_s: float = 0.0) -> list[Record]:
    out: list[Record] = []
    while batch := con.poll_batch(1000, timeout_s):
        out.extend(batch)
    return out


def test_range_assignment_in_join_order_and_rebalance_on_leave() -> None:
    broker = _broker(6)
    members = [InMemoryEventConsumer(broker, "g", ["t"]) for _ in range(4)]
    for m in members:
        m.poll_batch(10, 0)
    assert [m.assignment() for m in members] == [
        [("t", 0), ("t", 1)], [("t", 2), ("t", 3)], [("t", 4)], [("t", 5)]]
    members[0].close()
    members[2].close()
    members[1].poll_batch(10, 0)
    members[3].poll_batch(10, 0)
    assert members[1].assignment() == [("t", 0), ("t", 1), ("t", 2)]
    assert members[3].assignment() == [("t", 3), ("t", 4), ("t", 5)]


def test_hooks_run_in_order_on_the_polling_thread_and_may_call_back() -> None:
    broker = _broker(2)
    events: list[tuple[str, list[tuple[str, int]]]] = []
    holder: list[InMemoryEventConsumer] = []

    def on_assign(parts: list[tuple[str, int]]) -> None:
        events.append(("assign", parts))
        holder[0].assignment()  # re-entering the consumer from a hook must not deadlock

    first = InMemoryEventConsumer(broker, "g", ["t"], on_assign=on_assign,
                                  on_revoke=lambda parts: events.append(("revoke", parts)))
    holder.append(first)
    assert events == []  # nothing runs before the member polls
    first.poll_batch(10, 0)
    second = InMemoryEventConsumer(broker, "g", ["t"])
    second.close()
    first.poll_batch(10, 0)
    assert events == [("assign", [("t", 0), ("t", 1)]), ("revoke", [("t", 1)]),
                      ("assign", [("t", 1)])]
    first.close()
    assert events[-1] == ("revoke", [("t", 0), ("t", 1)])
    with pytest.raises(Exception, match="closed"):
        first.poll_batch(1, 0)


def test_poll_blocks_until_timeout_or_a_record_arrives() -> None:
    broker = _broker(1)
    con = InMemoryEventConsumer(broker, "g", ["t"])
    started = time.monotonic()
    assert con.poll_batch(10, 0.2) == []
    assert 0.2 <= time.monotonic() - started < 1.0

    pub = InMemoryEventPublisher(broker)
    threading.Timer(0.1, lambda: pub.publish_fire("t", "k", b"late")).start()
    started = time.monotonic()
    records = con.poll_batch(10, 5.0)
    assert [r.value for r in records] == [b"late"]
    assert time.monotonic() - started < 2.0


def test_injected_failures_hit_exactly_n_publishes_of_either_path() -> None:
    broker = _broker(1)
    pub = InMemoryEventPublisher(broker)
    broker.fail_next_publishes(2, "disk full")
    fut = pub.publish("t", "k", b"1")
    pub.publish_fire("t", "k", b"2")
    ok = pub.publish("t", "k", b"3")
    with pytest.raises(PublishError, match="disk full"):
        fut.result(0)
    assert ok.result(0).offset == 0  # failed messages take no offset
    assert pub.stats() == (1, 2, "delivery to t failed: disk full")
    with pytest.raises(PublishError, match=r"2 message\(s\) not delivered"):
        pub.flush()
    pub.flush()
    assert broker.end_offsets("t") == {0: 1}


def test_topic_auto_creation_is_a_broker_setting() -> None:
    auto = InMemoryBroker(3)
    InMemoryEventPublisher(auto).publish("new", "k", b"v").result(0)
    assert auto.topics() == {"new": 3}

    strict = InMemoryBroker(3, auto_create_topics=False)
    fut = InMemoryEventPublisher(strict).publish("new", "k", b"v")
    with pytest.raises(PublishError, match="unknown topic"):
        fut.result(0)


def test_a_subscription_to_a_topic_created_later_gets_its_partitions() -> None:
    broker = InMemoryBroker(2, auto_create_topics=False)
    con = InMemoryEventConsumer(broker, "g", ["later"])
    assert con.poll_batch(10, 0) == [] and con.assignment() == []
    broker.ensure_topics([TopicSpec("later", 2)])
    InMemoryEventPublisher(broker).publish_fire("later", "k", b"v")
    assert [r.value for r in con.poll_batch(10, 1.0)] == [b"v"]
    assert con.assignment() == [("later", 0), ("later", 1)]

    broker.ensure_topics([TopicSpec("later", 4)], grow_partitions=True)
    con.poll_batch(10, 0)
    assert len(con.assignment()) == 4
    broker.delete_topics(["later"])
    con.poll_batch(10, 0)
    assert con.assignment() == []
    assert broker.committed("g") == {}


def test_group_lag_and_end_offsets() -> None:
    broker = _broker(2)
    pub = InMemoryEventPublisher(broker)
    for i in range(10):
        pub.publish_fire("t", f"k{i}", b"v")
    ends = broker.end_offsets("t")
    assert sum(ends.values()) == 10
    assert broker.group_lag("g", ["t", "unknown"]) == {("t", p): n for p, n in ends.items()}
    con = InMemoryEventConsumer(broker, "g", ["t"])
    records = _drain(con)
    con.commit([r for r in records if r.partition == 0])
    assert broker.group_lag("g", ["t"]) == {("t", 0): 0, ("t", 1): ends[1]}
    with pytest.raises(Exception, match="unknown topic"):
        broker.end_offsets("nope")


def test_concurrent_publishers_and_consumers_lose_nothing_and_keep_key_order() -> None:
    broker = _broker(6)
    n_threads, per_thread = 4, 2_000
    consumers = [InMemoryEventConsumer(broker, "g", ["t"]) for _ in range(2)]
    got: list[list[Record]] = [[], []]
    done = threading.Event()

    def consume(i: int) -> None:
        while not done.is_set() or (batch := consumers[i].poll_batch(500, 0)):
            batch = consumers[i].poll_batch(500, 0.05)
            got[i].extend(batch)
            consumers[i].commit(batch)

    def produce(t: int) -> None:
        pub = InMemoryEventPublisher(broker)
        for i in range(per_thread):
            pub.publish_fire("t", f"t{t}-k{i % 7}", f"{i}".encode())
        pub.close()

    readers = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    writers = [threading.Thread(target=produce, args=(t,)) for t in range(n_threads)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join(30)
    deadline = time.monotonic() + 30
    while sum(map(len, got)) < n_threads * per_thread and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    for th in readers:
        th.join(30)

    records = got[0] + got[1]
    assert len(records) == n_threads * per_thread
    assert len({(r.partition, r.offset) for r in records}) == len(records)
    seqs: dict[bytes | None, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert r.value is not None
        seqs[r.key].append(int(r.value))
    assert all(s == sorted(s) for s in seqs.values())
    assert broker.group_lag("g", ["t"]) == dict.fromkeys(((("t", p)) for p in range(6)), 0)


class GroupMachine(RuleBasedStateMachine):
    """Random joins, leaves, polls, commits and seeks in one group: whatever happens, each member
    sees its partitions in order without gaps, and a final member gets exactly what was never
    committed — nothing is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.broker = _broker(4)
        self.pub = InMemoryEventPublisher(self.broker)
        self.members: list[InMemoryEventConsumer] = []
        self.last_batch: dict[int, list[Record]] = {}
        # Per member: next offset expected per partition since its last assignment or seek.
        self.expected: dict[int, dict[tuple[str, int], int]] = {}
        self.delivered: set[tuple[int, int]] = set()
        self.published = 0

    def _member(self, i: int) -> tuple[int, InMemoryEventConsumer]:
        idx = i % len(self.members)
        return id(self.members[idx]), self.members[idx]

    @rule(keys=st.lists(st.integers(0, 9), min_size=1, max_size=20))
    def publish(self, keys: list[int]) -> None:
        for k in keys:
            self.pub.publish_fire("t", f"k{k}", b"v")
        self.published += len(keys)

    @precondition(lambda self: len(self.members) < 4)
    @rule()
    def join(self) -> None:
        ident: list[int] = []

        def on_assign(parts: list[tuple[str, int]]) -> None:
            committed = self.broker.committed("g")
            for tp in parts:
                self.expected[ident[0]][tp] = committed.get(tp, 0)

        def on_revoke(parts: list[tuple[str, int]]) -> None:
            for tp in parts:
                self.expected[ident[0]].pop(tp, None)

        con = InMemoryEventConsumer(self.broker, "g", ["t"], on_assign=on_assign,
                                    on_revoke=on_revoke)
        ident.append(id(con))
        self.expected[id(con)] = {}
        self.members.append(con)

    @precondition(lambda self: self.members)
    @rule(i=st.integers(0, 3))
    def leave(self, i: int) -> None:
        key, con = self._member(i)
        con.close()
        self.members.remove(con)
        self.last_batch.pop(key, None)

    @precondition(lambda self: self.members)
    @rule(i=st.integers(0, 3), n=st.integers(1, 30))
    def poll(self, i: int, n: int) -> None:
        key, con = self._member(i)
        batch = con.poll_batch(n, 0)
        owned = set(con.assignment())
        for rec in batch:
            tp = (rec.topic, rec.partition)
            assert tp in owned
            assert rec.offset == self.expected[key][tp], "gap or repeat within one ownership"
            self.expected[key][tp] = rec.offset + 1
            self.delivered.add((rec.partition, rec.offset))
        self.last_batch[key] = batch

    @precondition(lambda self: self.members)
    @rule(i=st.integers(0, 3))
    def commit(self, i: int) -> None:
        key, con = self._member(i)
        con.commit(self.last_batch.pop(key, []))

    @precondition(lambda self: self.members)
    @rule(i=st.integers(0, 3))
    def seek(self, i: int) -> None:
        key, con = self._member(i)
        con.seek_to_committed()
        committed = self.broker.committed("g")
        for tp in con.assignment():
            self.expected[key][tp] = committed.get(tp, 0)

    @invariant()
    def committed_within_log(self) -> None:
        ends = self.broker.end_offsets("t")
        assert all(off <= ends[p] for (_, p), off in self.broker.committed("g").items())

    def teardown(self) -> None:
        committed = self.broker.committed("g")
        for con in list(self.members):
            con.close()
        last = InMemoryEventConsumer(self.broker, "g", ["t"])
        rest = _drain(last)
        want = {(p, o) for p, end in self.broker.end_offsets("t").items()
                for o in range(committed.get(("t", p), 0), end)}
        assert {(r.partition, r.offset) for r in rest} == want
        assert len(rest) == len(want)
        # Everything published was delivered to somebody, or is in that final tail.
        assert len(self.delivered | want) == self.published


TestGroupMachine = GroupMachine.TestCase
TestGroupMachine.settings = hsettings(max_examples=60, stateful_step_count=40, deadline=None)
