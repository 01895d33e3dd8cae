"""The sink loop's delivery semantics, on the in-memory bus with a scripted store."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.partitioner import partition_for
from polystream.bus.ports import Delivered, TopicSpec
from polystream.bus.topology import (
    TOPIC_PARTITIONS,
    DeadLetterHeader,
    Topic,
    primary_sink,
    topics_for,
)
from polystream.domain.events import Envelope, ReceiptStatus, Sink, encode
from polystream.domain.examples import example_event
from polystream.receipts import ClaimHeld, InMemoryReceiptLog
from polystream.sinks.ports import DUPLICATE, STORED, Outcome, missing_prerequisite, rejected
from polystream.sinks.worker import SinkWorker, WorkerConfig
from polystream.store_errors import PermanentStoreError, TransientStoreError


class ScriptedStore:
    """Remembers applied event ids; fails as told. Idempotent like a real store."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.applied: list[str] = []
        self.transient_failures = 0
        self.permanent: set[str] = set()
        self.users: set[str] = set()

    def apply(self, events: Sequence[Envelope[Any]], *, allow_defer: bool = True
              ) -> list[Outcome]:
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientStoreError("store down")
        for env in events:
            if str(env.event_id) in self.permanent:
                raise PermanentStoreError(env.event_id, "violates a constraint")
        out = []
        for env in events:
            user = getattr(env.payload, "user_id", None)
            if env.type == "user.registered":
                self.users.add(env.payload.user_id)
            elif user is not None and user not in self.users:
                if allow_defer:
                    out.append(missing_prerequisite("unknown user"))
                else:
                    self.applied.append(str(env.event_id))
                    out.append(rejected("unknown user"))
                continue
            if str(env.event_id) in self.applied:
                out.append(DUPLICATE)
            else:
                self.applied.append(str(env.event_id))
                out.append(STORED)
        return out

    def close(self) -> None:
        pass


def _setup(sink: Sink = Sink.POSTGRES) -> tuple[InMemoryBroker, SinkWorker, ScriptedStore,
                                                InMemoryReceiptLog]:
    broker = InMemoryBroker(auto_create_topics=False)
    broker.ensure_topics([TopicSpec(t.value, TOPIC_PARTITIONS[t]) for t in Topic])
    store = ScriptedStore(sink)
    receipts = InMemoryReceiptLog()
    worker = SinkWorker(
        sink=sink,
        consumer=InMemoryEventConsumer(broker, f"g-{sink}", [t.value for t in topics_for(sink)]),
        store=store, publisher=InMemoryEventPublisher(broker), receipts=receipts,
        config=WorkerConfig(batch_size=100, linger_s=0.01, backoff_initial_s=0.001,
                            backoff_max_s=0.002, prerequisite_grace_s=0.3,
                            defer_retry_s=0.0))
    return broker, worker, store, receipts


def _drain(worker: SinkWorker, steps: int = 20) -> None:
    for _ in range(steps):
        worker.step()


def _records(broker: InMemoryBroker, topic: Topic) -> list[Any]:
    consumer = InMemoryEventConsumer(broker, f"reader-{topic}-{id(broker)}", [topic.value])
    out = consumer.poll_batch(10_000, 0.05)
    consumer.close()
    return out


def test_a_type_the_sink_ignores_is_skipped_on_its_header_unless_the_sink_is_primary() -> None:
    """The Redis sink reads the catalog topic for titles but not for poster uploads: those it
    skips without validating them (MongoDB, the topic's primary, judges and dead-letters)."""
    broker, redis_worker, _, _ = _setup(Sink.REDIS)
    assert primary_sink(Topic.CATALOG.value) is Sink.MONGO
    pub = InMemoryEventPublisher(broker)
    upload = json.loads(encode(example_event("catalog.asset_uploaded")))
    upload["payload"]["title_id"] = 42  # invalid: only a full decode would notice
    pub.publish(Topic.CATALOG.value, "t1", json.dumps(upload).encode()).result()
    _drain(redis_worker, 3)
    assert redis_worker.totals.ignored == 1
    assert redis_worker.totals.skipped_invalid == 0
    assert _records(broker, Topic.DEADLETTER) == []

    _, mongo_worker, _, _ = _setup(Sink.MONGO)
    mongo_worker.consumer = InMemoryEventConsumer(broker, "g-mongo", [Topic.CATALOG.value])
    _drain(mongo_worker, 3)
    assert mongo_worker.totals.dead_lettered == 1


def test_valid_events_are_stored_with_receipts_and_committed() -> None:
    broker, worker, store, receipts = _setup()
    pub = InMemoryEventPublisher(broker)
    events = [example_event("user.registered", user_id=f"u{i}", email=f"u{i}@example.org")
              for i in range(5)]
    for env in events:
        pub.publish(Topic.USERS.value, env.key, encode(env)).result()
    _drain(worker, 3)
    assert sorted(store.applied) == sorted(str(e.event_id) for e in events)
    for env in events:
        [rc] = receipts.get(env.event_id)
        assert rc.sink is Sink.POSTGRES and rc.status is ReceiptStatus.STORED
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0
    assert len(_records(broker, Topic.RECEIPTS)) == 5


def test_invalid_records_are_dead_lettered_once_by_the_primary_sink_only() -> None:
    assert primary_sink(Topic.USERS.value) is Sink.POSTGRES
    assert primary_sink(Topic.CATALOG.value) is Sink.MONGO
    broker, worker, store, _ = _setup(Sink.POSTGRES)
    pub = InMemoryEventPublisher(broker)
    good = example_event("user.registered")
    pub.publish(Topic.USERS.value, "u1", b"{not json").result()
    pub.publish(Topic.USERS.value, "u1", b'{"type": "user.teleported", "schema_version": 1}'
                ).result()
    pub.publish(Topic.USERS.value, good.key, encode(good)).result()
    _drain(worker, 3)
    dead = _records(broker, Topic.DEADLETTER)
    assert len(dead) == 2
    reasons = sorted(r.headers[DeadLetterHeader.REASON.value].decode() for r in dead)
    assert reasons == ["malformed", "unknown_type"]
    assert {r.headers[DeadLetterHeader.TOPIC.value] for r in dead} == {b"polystream.users"}
    assert dead[0].value == b"{not json"
    assert store.applied == [str(good.event_id)]

    # The redis sink also reads the users topic (user.erased) but must not dead-letter again.
    _, redis_worker, _, _ = _setup(Sink.REDIS)
    redis_worker.consumer = InMemoryEventConsumer(broker, "g-redis", [Topic.USERS.value])
    _drain(redis_worker, 3)
    assert len(_records(broker, Topic.DEADLETTER)) == 2
    assert redis_worker.totals.skipped_invalid == 2


def test_a_claim_store_outage_rewinds_and_the_dead_letter_is_sent_once() -> None:
    """The claim (Redis) cannot answer: the batch is not durable and comes again, rather than
    the worker dying or the record being skipped or dead-lettered twice."""
    broker, worker, _, receipts = _setup(Sink.POSTGRES)
    down = [2]

    def claim(name: str) -> bool:
        if down[0] > 0:
            down[0] -= 1
            raise TransientStoreError("receipts: redis unavailable")
        return receipts.claim(name)

    worker.handler._dead_letters._claim = claim  # the receipt log's claim, Redis down twice
    pub = InMemoryEventPublisher(broker)
    pub.publish(Topic.USERS.value, "u1", b"{not json").result()
    for _ in range(2):
        assert worker.step().committed is False
    assert _records(broker, Topic.DEADLETTER) == []
    _drain(worker, 3)
    assert len(_records(broker, Topic.DEADLETTER)) == 1
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0


def test_a_dead_letter_kafka_refused_gives_its_claim_back_and_goes_out_once() -> None:
    """The dead letter was claimed, then its delivery failed for good: the flush fails, the
    batch comes again, and the claim given back lets the redelivery send it (once)."""
    broker, worker, _, receipts = _setup(Sink.POSTGRES)
    pub = InMemoryEventPublisher(broker)
    sent = pub.publish(Topic.USERS.value, "u1", b"{not json").result()
    broker.fail_next_publishes(1, "broker down")  # the dead letter's delivery
    assert worker.step().committed is False
    assert _records(broker, Topic.DEADLETTER) == []
    _drain(worker, 3)
    [letter] = _records(broker, Topic.DEADLETTER)
    assert letter.value == b"{not json"
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0
    name = f"dlq:{Topic.USERS.value}:{sent.partition}:{sent.offset}"
    assert receipts.claim(name) is False  # claimed again by the delivery that went out


def test_a_claim_given_back_while_redis_is_down_is_given_back_before_the_next_claim() -> None:
    """Kafka refused the dead letter and Redis refused to give its claim back: the give-back
    is owed and paid before the next claim, so the redelivery still sends it, once."""
    broker, worker, _, receipts = _setup(Sink.POSTGRES)
    refusals = [1]

    def release(name: str) -> None:
        if refusals[0] > 0:
            refusals[0] -= 1
            raise TransientStoreError("receipts: redis unavailable")
        receipts.release(name)

    worker.handler._dead_letters._release = release
    pub = InMemoryEventPublisher(broker)
    pub.publish(Topic.USERS.value, "u1", b"{not json").result()
    broker.fail_next_publishes(1, "broker down")
    assert worker.step().committed is False
    assert refusals == [0]
    _drain(worker, 3)
    assert len(_records(broker, Topic.DEADLETTER)) == 1
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0


def test_transient_store_errors_retry_and_nothing_is_skipped() -> None:
    broker, worker, store, _ = _setup()
    store.transient_failures = 7  # more than the quick retries: the batch is rewound
    pub = InMemoryEventPublisher(broker)
    events = [example_event("user.registered", user_id=f"u{i}", email=f"u{i}@example.org")
              for i in range(3)]
    for env in events:
        pub.publish(Topic.USERS.value, env.key, encode(env)).result()
    first = worker.step()
    assert first.committed is False
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 3
    _drain(worker, 5)
    assert sorted(store.applied) == sorted(str(e.event_id) for e in events)
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0


def test_a_permanently_failing_event_is_dead_lettered_and_the_rest_flows() -> None:
    broker, worker, store, receipts = _setup()
    pub = InMemoryEventPublisher(broker)
    events = [example_event("user.registered", user_id=f"u{i}", email=f"u{i}@example.org")
              for i in range(3)]
    store.permanent = {str(events[1].event_id)}
    for env in events:
        pub.publish(Topic.USERS.value, env.key, encode(env)).result()
    _drain(worker, 3)
    assert sorted(store.applied) == sorted([str(events[0].event_id), str(events[2].event_id)])
    [dead] = _records(broker, Topic.DEADLETTER)
    assert dead.headers[DeadLetterHeader.REASON.value] == b"store_rejected"
    [rc] = receipts.get(events[1].event_id)
    assert rc.status is ReceiptStatus.DEAD_LETTERED


def test_redelivery_after_a_crash_before_commit_applies_nothing_twice() -> None:
    broker, worker, store, _ = _setup()
    pub = InMemoryEventPublisher(broker)
    env = example_event("user.registered")
    pub.publish(Topic.USERS.value, env.key, encode(env)).result()
    _drain(worker, 2)
    # Forget the commit, as if the worker died between the store and the commit.
    worker.consumer.close()
    broker._groups["g-postgres"].committed.clear()
    worker.consumer = InMemoryEventConsumer(broker, "g-postgres", [Topic.USERS.value])
    stats = worker.step()
    assert stats.applied == {"duplicate": 1}
    assert store.applied == [str(env.event_id)]


def test_an_event_waiting_for_another_topic_is_deferred_then_stored() -> None:
    broker, worker, _, receipts = _setup()
    pub = InMemoryEventPublisher(broker)
    reg = example_event("user.registered", user_id="u7", email="u7@example.org")
    rating = example_event("rating.submitted", user_id="u7")
    # The rating's topic is read first: its user is not known yet.
    pub.publish(Topic.RATINGS.value, rating.key, encode(rating)).result()
    worker.step()
    assert worker.deferred == 1
    assert receipts.get(rating.event_id) == []
    lag = broker.group_lag("g-postgres", [Topic.RATINGS.value])
    assert sum(lag.values()) == 1, "a deferred event's offset must not be committed"

    pub.publish(Topic.USERS.value, reg.key, encode(reg)).result()
    _drain(worker, 3)
    assert worker.deferred == 0
    [rc] = receipts.get(rating.event_id)
    assert rc.status is ReceiptStatus.STORED
    assert sum(broker.group_lag("g-postgres", [Topic.RATINGS.value, Topic.USERS.value]
                                ).values()) == 0


def test_a_prerequisite_that_never_comes_ends_in_a_final_rejection() -> None:
    import time

    broker, worker, _, receipts = _setup()
    pub = InMemoryEventPublisher(broker)
    rating = example_event("rating.submitted", user_id="ghost")
    pub.publish(Topic.RATINGS.value, rating.key, encode(rating)).result()
    worker.step()
    assert worker.deferred == 1
    time.sleep(0.35)
    _drain(worker, 2)
    [rc] = receipts.get(rating.event_id)
    assert rc.status is ReceiptStatus.REJECTED and rc.reason == "unknown user"
    assert sum(broker.group_lag("g-postgres", [Topic.RATINGS.value]).values()) == 0


def _partition(broker: InMemoryBroker, topic: Topic, key: str) -> int:
    return partition_for(key.encode(), broker.topics()[topic.value])


def test_a_backlog_on_the_prerequisites_topic_delays_the_decision_never_changes_it() -> None:
    import time

    broker, worker, _, receipts = _setup()
    pub = InMemoryEventPublisher(broker)
    reg = example_event("user.registered", user_id="u9", email="u9@example.org")
    rating = example_event("rating.submitted", user_id="u9")
    # The registration is earlier in the log, but its partition is not read yet (a backlog).
    pub.publish(Topic.USERS.value, reg.key, encode(reg)).result()
    pub.publish(Topic.RATINGS.value, rating.key, encode(rating)).result()
    users_partition = (Topic.USERS.value, _partition(broker, Topic.USERS, "u9"))
    worker.consumer.pause([users_partition])
    _drain(worker, 3)
    assert worker.deferred == 1
    time.sleep(0.4)  # longer than the grace: waiting longer must not make it final
    _drain(worker, 5)
    assert worker.deferred == 1 and receipts.get(rating.event_id) == []

    worker.consumer.resume([users_partition])
    _drain(worker, 5)
    [rc] = receipts.get(rating.event_id)
    assert rc.status is ReceiptStatus.STORED
    assert worker.deferred == 0


def test_a_prerequisite_read_by_another_member_of_the_group_counts() -> None:
    import time

    broker, first, store, receipts = _setup()
    # Two members of one group, one reading the ratings, the other the registrations.
    first.consumer.close()
    first.consumer = InMemoryEventConsumer(broker, "g-postgres", [Topic.RATINGS.value])
    second = SinkWorker(
        sink=Sink.POSTGRES,
        consumer=InMemoryEventConsumer(broker, "g-postgres", [Topic.USERS.value]),
        store=store, publisher=InMemoryEventPublisher(broker), receipts=receipts,
        config=first.handler.config)
    reg = example_event("user.registered", user_id="u5", email="u5@example.org")
    rating = example_event("rating.submitted", user_id="u5")
    pub = InMemoryEventPublisher(broker)
    pub.publish(Topic.USERS.value, reg.key, encode(reg)).result()
    pub.publish(Topic.RATINGS.value, rating.key, encode(rating)).result()
    _drain(first, 3)
    time.sleep(0.4)
    _drain(first, 3)
    assert first.deferred == 1, "the other member has not read the registration yet"

    _drain(second, 3)
    _drain(first, 3)
    [rc] = receipts.get(rating.event_id)
    assert rc.status is ReceiptStatus.STORED
    assert first.deferred == 0


def test_too_many_deferred_events_pause_their_partitions_so_the_prerequisites_flow() -> None:
    broker, worker, _, receipts = _setup()
    worker.handler.config.max_deferred = 2
    pub = InMemoryEventPublisher(broker)
    users = [f"g{i}" for i in range(5)]
    ratings = [example_event("rating.submitted", user_id=u) for u in users]
    for env in ratings:
        pub.publish(Topic.RATINGS.value, env.key, encode(env)).result()
    _drain(worker, 2)
    assert worker.deferred == 5
    paused = {(Topic.RATINGS.value, _partition(broker, Topic.RATINGS, u)) for u in users}
    # Another rating on a paused partition is not read while its partition is paused.
    late_user = next(f"x{i}" for i in range(1000)
                     if (Topic.RATINGS.value, _partition(broker, Topic.RATINGS, f"x{i}"))
                     in paused)
    late = example_event("rating.submitted", user_id=late_user)
    pub.publish(Topic.RATINGS.value, late.key, encode(late)).result()
    _drain(worker, 2)
    assert worker.deferred == 5

    # The registrations still flow (their topic is not paused): everything settles.
    for u in [*users, late_user]:
        reg = example_event("user.registered", user_id=u, email=f"{u}@example.org")
        pub.publish(Topic.USERS.value, reg.key, encode(reg)).result()
    _drain(worker, 10)
    for env in [*ratings, late]:
        [rc] = receipts.get(env.event_id)
        assert rc.status is ReceiptStatus.STORED
    assert worker.deferred == 0
    assert sum(broker.group_lag("g-postgres", [Topic.RATINGS.value]).values()) == 0


def test_a_topic_others_wait_for_is_never_paused() -> None:
    # Playback waits for subscriptions: a paused subscriptions partition would never be read
    # to its end, and the playback events waiting for it would never be decided.
    broker, worker, _, receipts = _setup()
    worker.handler.config.max_deferred = 2
    pub = InMemoryEventPublisher(broker)
    subs = [example_event("subscription.started", user_id=f"s{i}") for i in range(5)]
    for env in subs:
        pub.publish(Topic.SUBSCRIPTIONS.value, env.key, encode(env)).result()
    _drain(worker, 2)
    assert worker.deferred == 5
    same_partition = next(
        f"y{i}" for i in range(1000)
        if _partition(broker, Topic.SUBSCRIPTIONS, f"y{i}")
        == _partition(broker, Topic.SUBSCRIPTIONS, "s0"))
    late = example_event("subscription.started", user_id=same_partition)
    pub.publish(Topic.SUBSCRIPTIONS.value, late.key, encode(late)).result()
    _drain(worker, 2)
    assert worker.deferred == 6, "the subscriptions partition kept flowing"
    for u in [*(f"s{i}" for i in range(5)), same_partition]:
        reg = example_event("user.registered", user_id=u, email=f"{u}@example.org")
        pub.publish(Topic.USERS.value, reg.key, encode(reg)).result()
    _drain(worker, 10)
    for env in [*subs, late]:
        [rc] = receipts.get(env.event_id)
        assert rc.status is ReceiptStatus.STORED


def test_the_events_counter_is_labelled_by_event_type_and_invalid_records_by_invalid() -> None:
    from prometheus_client import REGISTRY

    def count(event_type: str, status: str) -> float:
        value = REGISTRY.get_sample_value("polystream_sink_events_total", {
            "sink": "postgres", "event_type": event_type, "status": status})
        return value or 0.0

    before = {k: count(*k) for k in [("user.registered", "stored"),
                                     ("user.registered", "duplicate"),
                                     ("invalid", "dead_lettered")]}
    broker, worker, store, _ = _setup(Sink.POSTGRES)
    pub = InMemoryEventPublisher(broker)
    events = [example_event("user.registered", user_id=f"t{i}", email=f"t{i}@example.org")
              for i in range(3)]
    store.applied.append(str(events[0].event_id))  # already applied: a duplicate
    for env in events:
        pub.publish(Topic.USERS.value, env.key, encode(env)).result()
    pub.publish(Topic.USERS.value, "t9", b"{not json").result()
    _drain(worker, 3)
    assert count("user.registered", "stored") - before["user.registered", "stored"] == 2
    assert count("user.registered", "duplicate") - before["user.registered", "duplicate"] == 1
    assert count("invalid", "dead_lettered") - before["invalid", "dead_lettered"] == 1


class _Crash(BaseException):
    """The process dies here (a BaseException: nothing on the way catches it)."""


class _DyingPublisher(InMemoryEventPublisher):
    """Dies when asked to send a dead letter: after its claim, before any delivery."""

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Future[Delivered]:
        if topic == Topic.DEADLETTER.value:
            raise _Crash()
        return super().publish(topic, key, value, headers)


def _postgres_worker(broker: InMemoryBroker, receipts: InMemoryReceiptLog,
                     publisher: InMemoryEventPublisher) -> SinkWorker:
    return SinkWorker(
        sink=Sink.POSTGRES, store=ScriptedStore(Sink.POSTGRES), publisher=publisher,
        consumer=InMemoryEventConsumer(broker, "g-postgres",
                                       [t.value for t in topics_for(Sink.POSTGRES)]),
        receipts=receipts, config=WorkerConfig(batch_size=100, linger_s=0.01,
                                               backoff_initial_s=0.001, backoff_max_s=0.002))


def test_a_worker_dying_between_the_claim_and_the_delivery_loses_no_dead_letter() -> None:
    """The claim is a lease until Kafka acknowledged the dead letter: the next worker waits
    for the dead one's lease to end, then sends it, once, and confirms the claim."""
    broker, _, _, _ = _setup(Sink.POSTGRES)
    receipts = InMemoryReceiptLog(lease_s=0.3)
    first = _postgres_worker(broker, receipts, _DyingPublisher(broker))
    sent = InMemoryEventPublisher(broker).publish(Topic.USERS.value, "u1", b"{not json").result()
    with pytest.raises(_Crash):
        first.step()
    first.consumer.close()  # its session ends: the group hands the partition on
    name = f"dlq:{Topic.USERS.value}:{sent.partition}:{sent.offset}"
    with pytest.raises(ClaimHeld):
        receipts.claim(name)  # taken by the dead worker, never confirmed
    second = _postgres_worker(broker, receipts, InMemoryEventPublisher(broker))
    assert second.step().committed is False  # the lease still runs: wait, skip nothing
    assert _records(broker, Topic.DEADLETTER) == []
    time.sleep(0.35)
    _drain(second, 3)
    [letter] = _records(broker, Topic.DEADLETTER)
    assert letter.value == b"{not json"
    assert sum(broker.group_lag("g-postgres", [Topic.USERS.value]).values()) == 0
    assert receipts.claim(name) is False  # confirmed: a replay does not send it again
