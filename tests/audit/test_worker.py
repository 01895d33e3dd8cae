"""The auditor's delivery semantics and privacy, on the in-memory bus and index."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from polystream import bootstrap
from polystream.audit.documents import DocKind, IndexItem
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import AuditIndexUnavailable, AuditQuery, IndexFailure
from polystream.audit.worker import (
    DEV_AUDIT_SECRET,
    AuditConfig,
    AuditConfigError,
    AuditWorker,
    audit_secret,
)
from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import BusError, Record, TopicSpec
from polystream.bus.topology import (
    TOPIC_PARTITIONS,
    DeadLetterHeader,
    Topic,
    dead_letter_headers,
    topic_of,
    topics_for,
)
from polystream.cli.worker import START_UP_TRANSIENT
from polystream.domain.events import (
    EVENT_TYPES,
    Envelope,
    Receipt,
    ReceiptStatus,
    Sink,
    encode,
    find_card_data,
)
from polystream.domain.examples import example_event
from polystream.receipts import InMemoryReceiptLog
from polystream.runtime.deadletters import record_claim
from polystream.runtime.supervisor import ExitCode, Role, Supervisor
from polystream.settings import Settings
from polystream.sinks.ports import STORED, Outcome
from polystream.sinks.worker import SinkWorker, WorkerConfig
from polystream.store_errors import TransientStoreError

from .conftest import FAST_HASHER, SECRET, card_like_runs

AUDIT_TOPICS = [topic.value for topic in topics_for(Sink.AUDIT)]
FAST = AuditConfig(batch_size=100, linger_s=0.005, backoff_initial_s=0.001, backoff_max_s=0.002)


class Bus:
    def __init__(self) -> None:
        self.broker = InMemoryBroker(auto_create_topics=False)
        self.broker.ensure_topics([TopicSpec(t.value, TOPIC_PARTITIONS[t]) for t in Topic])
        self.publisher = InMemoryEventPublisher(self.broker)
        self._groups = 0

    def publish(self, *events: Envelope[Any]) -> None:
        for env in events:
            self.publisher.publish(topic_of(env.type).value, env.key,
                                   encode(env)).result()

    def raw(self, topic: Topic | str, key: str, value: bytes,
            headers: dict[str, bytes] | None = None) -> None:
        self.publisher.publish(str(topic), key, value, headers).result()

    def receipt(self, env: Envelope[Any], sink: Sink,
                status: ReceiptStatus = ReceiptStatus.STORED) -> None:
        rc = Receipt(event_id=env.event_id, event_type=env.type, sink=sink, status=status,
                     processed_at=datetime.now(UTC))
        self.raw(Topic.RECEIPTS, str(env.event_id), rc.model_dump_json().encode())

    def auditor(self, index: Any, group: str | None = None,
                config: AuditConfig = FAST) -> AuditWorker:
        self._groups += 1
        consumer = InMemoryEventConsumer(self.broker, group or f"audit-{self._groups}",
                                         AUDIT_TOPICS)
        return AuditWorker(consumer=consumer, index=index, publisher=self.publisher,
                           secret=SECRET, config=config)

    def lag(self, group: str) -> int:
        return sum(self.broker.group_lag(group, AUDIT_TOPICS).values())

    def records(self, topic: Topic) -> list[Record]:
        self._groups += 1
        consumer = InMemoryEventConsumer(self.broker, f"reader-{self._groups}", [topic.value])
        out = consumer.poll_batch(100_000, 0.01)
        consumer.close()
        return out


def drain(worker: AuditWorker, max_steps: int = 200) -> None:
    """Step until a poll comes back empty (everything read was committed)."""
    for _ in range(max_steps):
        stats = worker.step()
        if stats.records == 0:
            return
    raise AssertionError("the auditor did not catch up")


def snapshot(index: InMemoryAuditIndex) -> dict[Any, Any]:
    return copy.deepcopy(index._docs)


def mixed_events(n_users: int = 5) -> list[Envelope[Any]]:
    """Every event type, for several users, each with its own ids."""
    events = []
    for u in range(n_users):
        user = f"user-{u}"
        for event_type in EVENT_TYPES:
            overrides: dict[str, Any] = {}
            fields = EVENT_TYPES[event_type].payload_model.model_fields
            if "user_id" in fields:
                overrides["user_id"] = user
            if event_type == "user.registered":
                overrides["email"] = f"{user}@example.org"
            if event_type == "user.erased":
                continue  # erasure has its own test
            events.append(example_event(event_type, **overrides))
    return events


def test_every_event_is_one_document_and_a_replay_changes_nothing() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    events = mixed_events()
    bus.publish(*events)
    worker = bus.auditor(index, "audit-main")
    drain(worker)
    assert index.count() == len(events)
    assert {str(env.event_id) for env in events} == {
        item.doc_id for item in index.search(size=500).items}
    assert bus.lag("audit-main") == 0
    assert worker.totals.events == len(events)
    before = snapshot(index)

    # A replay from offset 0: a new group starts at the beginning of every partition.
    drain(bus.auditor(index, "audit-replay"))
    assert index.count() == len(events)
    assert snapshot(index) == before


def test_the_lineage_gets_receipts_from_before_and_after_the_event() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    env = example_event("rating.submitted")
    worker = bus.auditor(index)
    bus.receipt(env, Sink.POSTGRES)  # the receipt overtakes the event
    drain(worker)
    stub = index.get(env.event_id)
    assert stub is not None and stub.kind is None
    bus.publish(env)
    bus.receipt(env, Sink.REDIS)
    drain(worker)
    record = index.get(env.event_id)
    assert record is not None and record.kind is DocKind.EVENT
    assert set(record.lineage) == {"postgres", "redis", "audit"}
    assert index.count() == 1


class AcceptAll:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def apply(self, events: Sequence[Envelope[Any]], *, allow_defer: bool = True
              ) -> list[Outcome]:
        return [STORED for _ in events]

    def close(self) -> None:
        pass


def test_lineage_shows_every_sink_that_should_store_the_event() -> None:
    """With the real S2 loop publishing receipts, each event's lineage names all its sinks."""
    bus, index = Bus(), InMemoryAuditIndex()
    events = mixed_events(2)
    bus.publish(*events)
    for sink in (Sink.POSTGRES, Sink.MONGO, Sink.REDIS):
        s2 = SinkWorker(sink=sink, consumer=InMemoryEventConsumer(
            bus.broker, f"s2-{sink}", [t.value for t in topics_for(sink)]),
            store=AcceptAll(sink), publisher=bus.publisher, receipts=InMemoryReceiptLog(),
            config=WorkerConfig(batch_size=500, linger_s=0.005))
        for _ in range(5):
            s2.step()
    drain(bus.auditor(index))
    for env in events:
        record = index.get(env.event_id)
        assert record is not None
        assert set(record.lineage) == {s.value for s in EVENT_TYPES[env.type].consumers}
        assert {e.status for e in record.lineage.values()} == {"stored"}


def test_dead_letters_are_indexed_with_their_reason_and_never_their_bytes() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    # Invalid records on an event topic: the primary sink (postgres for users) dead-letters
    # them; the auditor only counts them, then indexes the dead letters.
    bus.raw(Topic.USERS, "u1", b'{"not": "an event", "password": "hunter2"')
    bus.raw(Topic.USERS, "u1", b'{"type": "user.teleported", "schema_version": 1}')
    s2 = SinkWorker(sink=Sink.POSTGRES, consumer=InMemoryEventConsumer(
        bus.broker, "s2-pg", [Topic.USERS.value]), store=AcceptAll(Sink.POSTGRES),
        publisher=bus.publisher, receipts=None, config=WorkerConfig(linger_s=0.005))
    s2.step()
    worker = bus.auditor(index)
    drain(worker)
    assert worker.totals.invalid == 2
    assert index.count() == 0
    letters = index.search(kind=DocKind.DEAD_LETTER).items
    assert sorted(str(d.dead_letter.reason) for d in letters if d.dead_letter) == [
        "malformed", "unknown_type"]
    for letter in letters:
        assert letter.dead_letter is not None
        assert letter.dead_letter.original_topic == Topic.USERS.value
        assert letter.dead_letter.consumer == "postgres"
        assert letter.dead_letter.size_bytes and letter.dead_letter.hmac_sha256
    unknown = next(d for d in letters if d.dead_letter and d.dead_letter.reason == "unknown_type")
    assert unknown.type == "user.teleported"
    assert unknown.dead_letter is not None
    assert unknown.dead_letter.preview == {"type": "user.teleported", "schema_version": 1}
    # Redelivered dead letters and a sink that dead-letters the same record twice: one doc each.
    dlq = bus.records(Topic.DEADLETTER)
    for rec in dlq:
        bus.raw(Topic.DEADLETTER, "again", rec.value or b"", dict(rec.headers))
    drain(worker)
    assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 2


def test_nothing_secret_is_ever_indexed() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    passwords = [f"correct horse {i} battery" for i in range(3)]
    hashes = [FAST_HASHER.hash(pw) for pw in passwords]
    session_tokens = [f"sess_{i}_Zm9vYmFyYmF6cXV4cXV1eA" for i in range(3)]
    card_tokens = [f"tok_secretCardToken{i}" for i in range(3)]
    cards = ["4111 1111 1111 1111", "5555555555554444", "3782-822463-10005"]
    events: list[Envelope[Any]] = []
    for i in range(3):
        user = f"secret-user-{i}"
        events += [
            example_event("user.registered", user_id=user, email=f"{user}@example.org",
                          display_name=f"Person {i}", password_hash=hashes[i]),
            example_event("payment.succeeded", user_id=user, card_token=card_tokens[i]),
            example_event("payment.failed", user_id=user, card_token=card_tokens[i]),
            example_event("session.login_started", user_id=user,
                          user_agent="Mozilla/5.0 (X11; Linux)"),
        ]
    bus.publish(*events)
    # Whatever ends up on the dead-letter topic (a client bug, an attacker) is not indexed.
    for i in range(3):
        leak = {"type": "user.registered", "schema_version": 1,
                "payload": {"user_id": f"secret-user-{i}", "password": passwords[i],
                            "password_hash": hashes[i], "token": session_tokens[i],
                            "card": cards[i], "cvv": "123", cards[i]: "as a key",
                            "note": f"my card is {cards[i]}"}}
        headers = dead_letter_headers("invalid", topic=Topic.USERS.value, partition=0,
                                      offset=100 + i, consumer=Sink.POSTGRES,
                                      detail="payload.password: Extra inputs are not permitted")
        bus.raw(Topic.DEADLETTER, f"secret-user-{i}", json.dumps(leak).encode(), headers)
        bus.raw(Topic.DEADLETTER, "raw", f"password={passwords[i]} {cards[i]}".encode(), {
            DeadLetterHeader.REASON.value: b"malformed",
            DeadLetterHeader.DETAIL.value: f"bad bytes near {cards[i]}".encode()})
        # A malformed receipt carrying secrets: dead-lettered by the auditor, then indexed.
        bus.raw(Topic.RECEIPTS, "r", json.dumps({"token": session_tokens[i]}).encode())
    drain(bus.auditor(index))
    assert index.count() == len(events)
    assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 9

    stored = list(index._docs.values())
    dump = json.dumps(stored)
    for secret in [*passwords, *hashes, *session_tokens, *card_tokens, "hunter2"]:
        assert secret not in dump
    for n in range(3):
        assert f"secret-user-{n}@example.org" not in dump
        assert f"Person {n}" not in dump
    assert "Mozilla" not in dump
    assert find_card_data(stored) == []
    assert card_like_runs(dump) == []


def test_user_erased_anonymises_the_trail_even_across_replays() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    theirs = [example_event("rating.submitted", user_id="gone", review="a review by them"),
              example_event("playback.started", user_id="gone"),
              example_event("flag.set", scope="user:gone")]
    others = [example_event("rating.submitted", user_id="stays", review="another review")]
    bus.publish(*theirs, *others)
    worker = bus.auditor(index)
    drain(worker)
    bus.publish(example_event("user.erased", user_id="gone", reason="user_request"))
    late = example_event("playback.stopped", user_id="gone")  # on another topic, after
    bus.publish(late)
    drain(worker)
    assert index.search(user_id="gone").total == 0
    [kept] = index.search(user_id="stays").items
    assert kept.payload and not kept.erased
    for env in [*theirs, late]:
        record = index.get(env.event_id)
        assert record is not None and record.erased and record.payload is None
    before = snapshot(index)
    drain(bus.auditor(index, "audit-replay"))
    assert snapshot(index) == before
    assert "gone" not in json.dumps(list(index._docs.values()))


class ScriptedIndex(InMemoryAuditIndex):
    """An in-memory index that is down, or refuses items, as told."""

    def __init__(self) -> None:
        super().__init__()
        self.down_for = 0
        self.refuse: dict[str, list[bool]] = {}  # doc id -> retryable flag per attempt
        self.calls = 0

    def _maybe_down(self) -> None:
        if self.down_for > 0:
            self.down_for -= 1
            raise AuditIndexUnavailable("connection refused (scripted)")

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        self.calls += 1
        self._maybe_down()
        refused = [(item, self.refuse[item.doc_id].pop(0)) for item in items
                   if self.refuse.get(item.doc_id)]
        refused_ids = {id(item) for item, _ in refused}
        ok = [item for item in items if id(item) not in refused_ids]
        failures = super().index_batch(ok)
        return failures + [IndexFailure(item, 429 if retry else 400, "scripted", retry)
                           for item, retry in refused]

    def erased_users(self, user_ids: Iterable[str]) -> set[str]:
        self._maybe_down()
        return super().erased_users(user_ids)


def test_an_unreachable_index_pauses_the_auditor_and_loses_nothing() -> None:
    bus, index = Bus(), ScriptedIndex()
    events = mixed_events(3)
    bus.publish(*events)
    worker = bus.auditor(index, "audit-outage")
    index.down_for = 6
    for _ in range(6):
        stats = worker.step()
        assert not stats.committed
    assert bus.lag("audit-outage") == len(events)  # nothing committed while down
    drain(worker)
    assert index.count() == len(events)
    assert bus.lag("audit-outage") == 0


def test_refused_items_are_retried_then_dead_lettered_never_dropped() -> None:
    bus, index = Bus(), ScriptedIndex()
    flaky, doomed, fine = (example_event("rating.submitted", user_id=f"r-{i}") for i in range(3))
    index.refuse[str(flaky.event_id)] = [True, True]  # overloaded twice, then accepted
    index.refuse[str(doomed.event_id)] = [False]  # refused for good
    bus.publish(flaky, doomed, fine)
    worker = bus.auditor(index)
    drain(worker)
    assert index.get(flaky.event_id) is not None and index.get(fine.event_id) is not None
    assert index.get(doomed.event_id) is None
    assert worker.totals.retried_items == 2 and worker.totals.dead_lettered == 1
    [dead] = bus.records(Topic.DEADLETTER)
    assert dead.headers[DeadLetterHeader.CONSUMER.value] == b"audit"
    assert dead.headers[DeadLetterHeader.REASON.value] == b"store_rejected"
    assert dead.value == encode(doomed)
    # ... and the dead letter itself is in the trail, pointing at the event.
    [letter] = index.search(kind=DocKind.DEAD_LETTER).items
    assert letter.event_id == str(doomed.event_id) and letter.dead_letter
    assert letter.dead_letter.consumer == "audit"


def test_a_refused_dead_letter_is_kept_in_minimal_form_not_looped() -> None:
    bus, index = Bus(), ScriptedIndex()
    headers = dead_letter_headers("malformed", topic=Topic.USERS.value, partition=1, offset=5,
                                  consumer=Sink.POSTGRES)
    bus.raw(Topic.DEADLETTER, "k", b"{oops", headers)
    index.refuse[f"dl:{Topic.USERS.value}:1:5:postgres"] = [False]
    worker = bus.auditor(index)
    drain(worker)
    [letter] = index.search(kind=DocKind.DEAD_LETTER).items
    assert letter.dead_letter is not None and letter.dead_letter.reason == "malformed"
    assert letter.dead_letter.preview is None  # the minimal form
    assert len(bus.records(Topic.DEADLETTER)) == 1  # not dead-lettered again


def test_items_refused_on_every_attempt_pause_the_batch() -> None:
    bus, index = Bus(), ScriptedIndex()
    env = example_event("rating.submitted")
    index.refuse[str(env.event_id)] = [True] * FAST.retry_attempts
    bus.publish(env)
    worker = bus.auditor(index, "audit-stuck")
    stats = worker.step()
    assert not stats.committed and bus.lag("audit-stuck") == 1
    drain(worker)
    assert index.count() == 1 and bus.lag("audit-stuck") == 0


def test_a_malformed_receipt_is_dead_lettered_by_the_auditor() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    bus.raw(Topic.RECEIPTS, "r", b'{"event_id": "nope"}')
    worker = bus.auditor(index)
    drain(worker)
    [dead] = bus.records(Topic.DEADLETTER)
    assert dead.headers[DeadLetterHeader.TOPIC.value] == Topic.RECEIPTS.value.encode()
    assert dead.headers[DeadLetterHeader.CONSUMER.value] == b"audit"
    assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 1


class FlakyClaims(InMemoryReceiptLog):
    """A receipt log whose claims fail (Redis down) while ``down`` > 0."""

    def __init__(self, down: int = 0) -> None:
        super().__init__()
        self.down = down
        self.asked = 0

    def claim(self, name: str) -> bool:
        self.asked += 1
        if self.down > 0:
            self.down -= 1
            raise TransientStoreError("receipts: redis unavailable: connection refused")
        return super().claim(name)


def claiming_auditor(bus: Bus, index: Any, claims: InMemoryReceiptLog,
                     group: str) -> AuditWorker:
    return AuditWorker(consumer=InMemoryEventConsumer(bus.broker, group, AUDIT_TOPICS),
                       index=index, publisher=bus.publisher, secret=SECRET, config=FAST,
                       claims=claims)


def test_a_redelivered_malformed_receipt_is_dead_lettered_once() -> None:
    bus, index, claims = Bus(), InMemoryAuditIndex(), InMemoryReceiptLog()
    bus.raw(Topic.RECEIPTS, "r", b'{"event_id": "nope"}')
    [original] = bus.records(Topic.RECEIPTS)
    first = claiming_auditor(bus, index, claims, "audit-claims")
    # Sent, then the commit is lost (a crash or a rebalance before it): delivered again.
    real_commit = first.consumer.commit

    def lost_commit(records: Sequence[Record]) -> None:
        first.consumer.commit = real_commit  # type: ignore[method-assign]
        raise BusError("REBALANCE_IN_PROGRESS")

    first.consumer.commit = lost_commit  # type: ignore[method-assign]
    assert not first.step().committed
    first.consumer.seek_to_committed()
    drain(first)
    assert bus.lag("audit-claims") == 0
    # And a replay: a group reading the receipts topic from its start.
    second = claiming_auditor(bus, index, claims, "audit-claims-replay")
    drain(second)
    assert first.totals.dead_lettered == 0 and second.totals.dead_lettered == 0
    [dead] = bus.records(Topic.DEADLETTER)
    assert dead.headers[DeadLetterHeader.TOPIC.value] == Topic.RECEIPTS.value.encode()
    assert dead.headers[DeadLetterHeader.PARTITION.value] == str(original.partition).encode()
    assert dead.headers[DeadLetterHeader.OFFSET.value] == str(original.offset).encode()
    assert dead.headers[DeadLetterHeader.CONSUMER.value] == b"audit"
    assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 1
    # Claimed in the auditor's own namespace, never a sink's.
    assert claims._claims == {record_claim(original, by="audit"): None}  # confirmed
    assert record_claim(original, by="audit") != record_claim(original)


def test_a_record_refused_by_the_index_is_dead_lettered_once_across_redeliveries() -> None:
    bus, index, claims = Bus(), ScriptedIndex(), InMemoryReceiptLog()
    doomed = example_event("rating.submitted", user_id="r-doomed")
    index.refuse[str(doomed.event_id)] = [False, False]  # refused for good, both times
    bus.publish(doomed)
    drain(claiming_auditor(bus, index, claims, "audit-refused-1"))
    drain(claiming_auditor(bus, index, claims, "audit-refused-2"))
    [dead] = bus.records(Topic.DEADLETTER)
    assert dead.headers[DeadLetterHeader.REASON.value] == b"store_rejected"


def test_a_claim_store_outage_rewinds_the_batch_and_sends_the_dead_letter_once() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    claims = FlakyClaims(down=3)
    bus.raw(Topic.RECEIPTS, "r", b"[1, 2]")
    env = example_event("flag.set")
    bus.publish(env)
    worker = claiming_auditor(bus, index, claims, "audit-claims-down")
    for _ in range(3):
        stats = worker.step()
        assert not stats.committed  # not skipped, not sent: retried
        assert bus.records(Topic.DEADLETTER) == []
    assert bus.lag("audit-claims-down") == 2
    drain(worker)
    assert bus.lag("audit-claims-down") == 0
    assert len(bus.records(Topic.DEADLETTER)) == 1
    assert index.get(env.event_id) is not None  # the rest of the batch went through too


def test_receipts_of_the_auditor_itself_are_recorded_for_read_your_writes() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    receipts = InMemoryReceiptLog()
    env = example_event("flag.set")
    bus.publish(env)
    worker = AuditWorker(consumer=InMemoryEventConsumer(bus.broker, "g", AUDIT_TOPICS),
                         index=index, publisher=bus.publisher, secret=SECRET, config=FAST,
                         receipts=receipts)
    drain(worker)
    [rc] = receipts.get(env.event_id)
    assert rc.sink is Sink.AUDIT and rc.status is ReceiptStatus.STORED


def test_the_audit_secret_is_required_in_production() -> None:
    dev = Settings(environment="dev")
    assert audit_secret(dev) == DEV_AUDIT_SECRET
    with pytest.raises(AuditConfigError):
        audit_secret(Settings(environment="prod"))
    prod = Settings.model_validate({"environment": "prod", "api": {"audit_secret": "s3"}})
    assert audit_secret(prod) == b"s3"


def test_documents_of_users_erased_earlier_are_anonymised_before_indexing() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    index.erase_user("ghost")
    env = example_event("rating.submitted", user_id="ghost", review="never stored")
    bus.publish(env)
    drain(bus.auditor(index))
    record = index.get(env.event_id)
    assert record is not None and record.erased and record.payload is None
    assert "never stored" not in json.dumps(list(index._docs.values()))


def test_a_failed_commit_means_redelivery_not_a_crash() -> None:
    bus, index = Bus(), InMemoryAuditIndex()
    env = example_event("rating.submitted")
    bus.publish(env)
    worker = bus.auditor(index, "audit-commit")
    real_commit = worker.consumer.commit
    calls = []

    def failing_commit(records: Sequence[Record]) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise BusError("REBALANCE_IN_PROGRESS")
        real_commit(records)

    worker.consumer.commit = failing_commit  # type: ignore[method-assign]
    assert not worker.step().committed
    assert bus.lag("audit-commit") == 1
    worker.consumer.seek_to_committed()  # what a rebalance does: back to the committed offset
    drain(worker)
    assert bus.lag("audit-commit") == 0 and index.count() == 1


def test_start_up_waits_for_an_unreachable_index_and_stops_on_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings.model_validate({"opensearch": {"url": f"http://127.0.0.1:{port}",
                                                       "timeout_s": 0.5}})
    attempts: list[float] = []

    def build() -> AuditWorker:
        attempts.append(time.monotonic())
        return bootstrap.audit_worker(settings, AuditConfig(batch_size=10, linger_s=0.01))

    supervisor = Supervisor([Role("auditor", build)], transient=START_UP_TRANSIENT,
                            shutdown_timeout_s=5)
    threading.Timer(2.0, supervisor.stop.set).start()
    started = time.monotonic()
    assert supervisor.run() is ExitCode.STOPPED
    assert len(attempts) >= 2, "an unreachable index is retried, not fatal"
    assert time.monotonic() - started < 8
