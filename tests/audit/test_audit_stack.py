"""The auditor on the real stack: Kafka + OpenSearch, its own topics, group and index prefix.

Each test creates unique topics (events, receipts, dead letters), a unique consumer group and
a unique index prefix, and deletes them all afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from polystream.audit.documents import AuditRecord, DocKind, IndexItem
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.audit.ports import AuditPage, AuditQuery, IndexFailure
from polystream.audit.worker import AuditConfig, AuditWorker
from polystream.bus import admin
from polystream.bus.admin import commit_group_offsets
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.ports import Record, TopicSpec
from polystream.bus.topology import DeadLetterHeader, dead_letter_headers
from polystream.domain.events import EVENT_TYPES, Envelope, Receipt, ReceiptStatus, Sink, encode
from polystream.domain.examples import example_event
from polystream.receipts import ReceiptLog
from polystream.receipts.redis_log import RedisReceiptLog
from polystream.settings import Settings

from .conftest import FAST_HASHER, SECRET, card_like_runs

pytestmark = pytest.mark.stack

WAIT_S = 25.0
# The asset example carries an inline image; the rest are small.
TYPES = [t for t in EVENT_TYPES if t not in {"user.erased", "catalog.asset_uploaded"}]


@dataclass
class Stage:
    settings: Settings
    unique: str
    events_topic: str
    receipts_topic: str
    deadletter_topic: str
    index: OpenSearchAuditIndex
    publisher: KafkaEventPublisher
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def topics(self) -> list[str]:
        return [self.events_topic, self.receipts_topic, self.deadletter_topic]

    def publish(self, events: Iterable[Envelope[Any]]) -> None:
        for env in events:
            self.publisher.publish_fire(self.events_topic, env.key, encode(env))
        self.publisher.flush(30)

    def receipt(self, env: Envelope[Any], sink: Sink) -> None:
        rc = Receipt(event_id=env.event_id, event_type=env.type, sink=sink,
                     status=ReceiptStatus.STORED, processed_at=datetime.now(UTC))
        self.publisher.publish_fire(self.receipts_topic, str(env.event_id),
                                    rc.model_dump_json().encode())

    def auditor(self, group: str, index: Any = None,
                claims: ReceiptLog | None = None) -> AuditWorker:
        consumer = KafkaEventConsumer(self.settings.kafka, group_id=group, topics=self.topics,
                                      client_id=f"audit-test-{self.unique}")
        config = AuditConfig(batch_size=1000, linger_s=0.05, backoff_initial_s=0.2,
                             backoff_max_s=1.0, receipts_topic=self.receipts_topic,
                             deadletter_topic=self.deadletter_topic,
                             retention_every_s=3600)
        return AuditWorker(consumer=consumer, index=index or self.index,
                           publisher=self.publisher, secret=SECRET, config=config,
                           claims=claims)

    def lag(self, group: str) -> int:
        return sum(admin.group_lag(self.settings.kafka, group, self.topics).values())

    def run_until_caught_up(self, worker: AuditWorker, group: str,
                            during: Callable[[], None] | None = None) -> float:
        """Run the auditor in a thread until the group's lag is 0; seconds it took."""
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            if during is not None:
                during()
            deadline = started + WAIT_S
            while self.lag(group) > 0:
                assert time.monotonic() < deadline, f"lag still {self.lag(group)}"
                time.sleep(0.2)
            return time.monotonic() - started
        finally:
            stop.set()
            thread.join(15)
            assert not thread.is_alive()

    def all_documents(self) -> list[dict[str, Any]]:
        self.index.refresh()
        found = self.index.client.search(index=self.index.pattern, body={
            "query": {"match_all": {}}, "size": 10_000})
        return [hit["_source"] for hit in found["hits"]["hits"]]


@pytest.fixture
def stage(settings: Settings, unique: str) -> Iterator[Stage]:
    base = f"audit-test-{unique}"
    names = [f"{base}-events", f"{base}-receipts", f"{base}-deadletter"]
    admin.ensure_topics(settings.kafka, [TopicSpec(name, 3) for name in names])
    index = OpenSearchAuditIndex(settings.opensearch.model_copy(
        update={"index_prefix": f"test-audit-{unique}"}))
    index.ensure()
    publisher = KafkaEventPublisher(settings.kafka, client_id=f"{base}-pub")
    st = Stage(settings, unique, names[0], names[1], names[2], index=index, publisher=publisher)
    try:
        yield st
    finally:
        publisher.close(10)
        index.drop_everything()
        index.close()
        admin.delete_topics(settings.kafka, names)


def events_for(n: int, tag: str) -> list[Envelope[Any]]:
    out = []
    for i in range(n):
        event_type = TYPES[i % len(TYPES)]
        overrides: dict[str, Any] = {}
        if "user_id" in EVENT_TYPES[event_type].payload_model.model_fields:
            overrides["user_id"] = f"{tag}-user-{i % 50}"
        if event_type == "user.registered":
            overrides["email"] = f"{tag}-{i}@example.org"
        out.append(example_event(event_type, **overrides))
    return out


def test_one_document_per_event_lineage_and_replay(stage: Stage) -> None:
    events = events_for(300, "main")
    for env in events[:50]:  # receipts that overtake their events
        stage.receipt(env, Sink.POSTGRES)
    stage.publisher.flush(30)
    stage.publish(events)
    for env in events[50:100]:
        stage.receipt(env, Sink.REDIS)
    for i in range(5):
        headers = dead_letter_headers("malformed", topic=stage.events_topic, partition=0,
                                      offset=10_000 + i, consumer=Sink.POSTGRES,
                                      detail="record is not valid JSON")
        stage.publisher.publish_fire(stage.deadletter_topic, "k", b"{broken", headers)
    stage.publisher.flush(30)

    group = f"audit-test-{stage.unique}"
    took = stage.run_until_caught_up(stage.auditor(group), group)
    stage.index.refresh()
    assert stage.index.count() == len(events)
    assert stage.index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 5
    for env in events[:100]:
        record = stage.index.get(env.event_id)
        assert record is not None and record.kind is DocKind.EVENT
        assert {"audit", "postgres" if env in events[:50] else "redis"} <= set(record.lineage)
    versions = {str(env.event_id): stage.index.client.get(
        index=stage.index.index_name(_bucket(env.event_id)), id=str(env.event_id))["_version"]
        for env in events[::30]}

    # Replay from offset 0: a new group starts at the beginning of every partition.
    replay = f"audit-test-{stage.unique}-replay"
    stage.run_until_caught_up(stage.auditor(replay), replay)
    stage.index.refresh()
    assert stage.index.count() == len(events)
    assert stage.index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 5
    assert versions == {doc_id: stage.index.client.get(
        index=stage.index.index_name(_bucket(doc_id)), id=doc_id)["_version"]
        for doc_id in versions}  # a replay is a no-op, not even a new version
    print(f"\n{len(events)} events + 100 receipts + 5 dead letters in {took:.1f}s")


def _bucket(event_id: UUID | str) -> str:
    from polystream.audit.documents import bucket_for_event

    return bucket_for_event(event_id)


def test_a_scan_of_the_whole_index_finds_no_secret(stage: Stage) -> None:
    passwords = [f"pass phrase {i} {stage.unique}" for i in range(3)]
    hashes = [FAST_HASHER.hash(pw) for pw in passwords]
    tokens = [f"tok_cardTok{i}{stage.unique}" for i in range(3)]
    session_tokens = [f"sess{i}{stage.unique}SeCrEt" for i in range(3)]
    cards = ["4111 1111 1111 1111", "5555555555554444", "3782-822463-10005"]
    events: list[Envelope[Any]] = []
    for i in range(3):
        user = f"scan-{stage.unique}-{i}"
        events += [example_event("user.registered", user_id=user, email=f"{user}@example.org",
                                 password_hash=hashes[i]),
                   example_event("payment.succeeded", user_id=user, card_token=tokens[i]),
                   example_event("session.login_started", user_id=user)]
    stage.publish(events)
    for i in range(3):
        leak = {"type": "session.login_started", "schema_version": 1,
                "payload": {"password": passwords[i], "session_token": session_tokens[i],
                            "card_number": cards[i], "note": f"card {cards[i]}"}}
        headers = dead_letter_headers("invalid", topic=stage.events_topic, partition=1,
                                      offset=i, consumer=Sink.REDIS, detail="extra fields")
        stage.publisher.publish_fire(stage.deadletter_topic, "k", json.dumps(leak).encode(),
                                     headers)
    stage.publisher.flush(30)
    group = f"audit-test-{stage.unique}"
    stage.run_until_caught_up(stage.auditor(group), group)
    docs = stage.all_documents()
    assert len(docs) == len(events) + 3
    dump = json.dumps(docs)
    for secret in [*passwords, *hashes, *tokens, *session_tokens]:
        assert secret not in dump
    assert "@example.org" not in dump
    assert card_like_runs(dump) == []


class SwitchableIndex:
    """The real index, or one pointed at a closed port while ``down`` is set (a real
    connection error through the real driver, without disturbing the shared server)."""

    def __init__(self, real: OpenSearchAuditIndex, dead: OpenSearchAuditIndex) -> None:
        self.real, self.dead = real, dead
        self.down = threading.Event()

    def _target(self) -> OpenSearchAuditIndex:
        return self.dead if self.down.is_set() else self.real

    def ensure(self) -> None:
        self._target().ensure()

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        return self._target().index_batch(items)

    def search(self, **kwargs: Any) -> AuditPage:
        return self._target().search(**kwargs)

    def get(self, event_id: str | UUID) -> AuditRecord | None:
        return self._target().get(event_id)

    def count(self, query: AuditQuery | None = None) -> int:
        return self._target().count(query)

    def erase_user(self, user_id: str) -> int:
        return self._target().erase_user(user_id)

    def erased_users(self, user_ids: Iterable[str]) -> set[str]:
        return self._target().erased_users(user_ids)

    def apply_retention(self, now: datetime) -> list[str]:
        return self._target().apply_retention(now)

    def refresh(self) -> None:
        self._target().refresh()

    def close(self) -> None:
        self.dead.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_index_outage_loses_and_doubles_nothing(stage: Stage) -> None:
    dead = OpenSearchAuditIndex(stage.settings.opensearch.model_copy(update={
        "url": f"http://127.0.0.1:{_closed_port()}", "index_prefix": stage.index.prefix,
        "timeout_s": 1.0}))
    index = SwitchableIndex(stage.index, dead)
    before, during_outage = events_for(150, "before"), events_for(150, "during")
    stage.publish(before)
    group = f"audit-test-{stage.unique}"
    worker = stage.auditor(group, index)
    lag_while_down: list[int] = []

    def outage() -> None:
        deadline = time.monotonic() + WAIT_S
        while stage.lag(group) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        index.down.set()
        stage.publish(during_outage)
        time.sleep(3.0)
        lag_while_down.append(stage.lag(group))
        index.down.clear()

    stage.run_until_caught_up(worker, group, during=outage)
    assert lag_while_down and lag_while_down[0] == len(during_outage)  # paused, nothing skipped
    stage.index.refresh()
    assert stage.index.count() == len(before) + len(during_outage)
    ids = {doc["doc_id"] for doc in stage.all_documents()}
    assert ids == {str(env.event_id) for env in [*before, *during_outage]}
    assert worker.totals.events >= len(before) + len(during_outage)
    dead.close()


def test_dead_letter_headers_round_trip(stage: Stage) -> None:
    env = example_event("rating.submitted", user_id=f"dl-{stage.unique}")
    headers = dead_letter_headers("store_rejected", topic=stage.events_topic, partition=2,
                                  offset=7, consumer=Sink.POSTGRES, detail="title unknown")
    stage.publish([env])
    stage.publisher.publish_fire(stage.deadletter_topic, env.key, encode(env), headers)
    stage.publisher.flush(30)
    group = f"audit-test-{stage.unique}"
    stage.run_until_caught_up(stage.auditor(group), group)
    stage.index.refresh()
    record = stage.index.get(env.event_id)
    assert record is not None and len(record.dead_letters) == 1
    info = record.dead_letters[0].dead_letter
    assert info is not None and info.reason == "store_rejected"
    assert info.original_topic == stage.events_topic and info.original_offset == 7
    assert info.detail == "title unknown" and info.consumer == "postgres"


class SwitchableClaims:
    """The real receipt log in Redis, or one pointed at a closed port while ``down`` is set."""

    def __init__(self, real: RedisReceiptLog, dead: RedisReceiptLog) -> None:
        self.real, self.dead = real, dead
        self.down = threading.Event()
        self.refused = 0

    def _target(self) -> RedisReceiptLog:
        return self.dead if self.down.is_set() else self.real

    def record(self, receipts: Sequence[Receipt], encoded: Sequence[str] | None = None) -> None:
        self._target().record(receipts, encoded)

    def get(self, event_id: UUID) -> list[Receipt]:
        return self._target().get(event_id)

    def claim(self, name: str) -> bool:
        target = self._target()
        if target is self.dead:
            self.refused += 1
        return target.claim(name)

    def confirm(self, names: Sequence[str]) -> None:
        self._target().confirm(names)

    def release(self, name: str) -> None:
        self._target().release(name)

    def set_owner(self, event_id: UUID, user_id: str) -> None:
        self._target().set_owner(event_id, user_id)

    def owner_of(self, event_id: UUID) -> str | None:
        return self._target().owner_of(event_id)


def _dead_letters(stage: Stage) -> list[Record]:
    """Every record of the stage's dead-letter topic, headers included."""
    consumer = KafkaEventConsumer(stage.settings.kafka, group_id=f"dl-reader-{time.time_ns()}",
                                  topics=[stage.deadletter_topic],
                                  client_id=f"dl-reader-{stage.unique}")
    out: list[Record] = []
    try:
        deadline = time.monotonic() + WAIT_S
        end = sum(admin.end_offsets(stage.settings.kafka, stage.deadletter_topic).values())
        while len(out) < end and time.monotonic() < deadline:
            out += consumer.poll_batch(1000, 0.5)
    finally:
        consumer.close()
    return out


def test_a_malformed_receipt_is_dead_lettered_once_across_an_outage_and_a_rewind(
        stage: Stage) -> None:
    """The auditor claims its dead letters in Redis like the sinks: with the claim store down
    it waits (nothing committed, nothing sent); after a rewind of its group to the start and
    a second run, the malformed receipt is still in the dead-letter topic exactly once."""
    import redis

    prefix = f"t{stage.unique}"
    real = RedisReceiptLog(redis.Redis.from_url(stage.settings.redis.url), prefix=prefix)
    dead = RedisReceiptLog(redis.Redis.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", socket_timeout=1.0,
        socket_connect_timeout=1.0), prefix=prefix)
    claims = SwitchableClaims(real, dead)
    events = events_for(20, "claims")
    stage.publish(events)
    sent = stage.publisher.publish(stage.receipts_topic, f"r-{stage.unique}",
                                   b'{"event_id": "not a receipt"}').result(30)
    group = f"audit-test-{stage.unique}"
    seen_while_down: list[tuple[int, int]] = []

    def outage() -> None:
        time.sleep(3.0)
        seen_while_down.append((stage.lag(group), len(_dead_letters(stage))))
        claims.down.clear()

    try:
        claims.down.set()
        stage.run_until_caught_up(stage.auditor(group, claims=claims), group, during=outage)
        [(lag, letters)] = seen_while_down
        assert claims.refused >= 1 and lag >= 1 and letters == 0  # waited, sent nothing

        # Rewind the group to the start of every topic and run the auditor again.
        commit_group_offsets(stage.settings.kafka, group,
                             {(topic, p): 0 for topic in stage.topics for p in range(3)})
        assert stage.lag(group) > 0
        again = stage.auditor(group, claims=claims)
        stage.run_until_caught_up(again, group)
        assert again.totals.receipts == 0 and again.totals.dead_lettered == 0

        [letter] = _dead_letters(stage)
        assert letter.value == b'{"event_id": "not a receipt"}'
        assert letter.headers[DeadLetterHeader.TOPIC.value] == stage.receipts_topic.encode()
        assert letter.headers[DeadLetterHeader.PARTITION.value] == str(sent.partition).encode()
        assert letter.headers[DeadLetterHeader.OFFSET.value] == str(sent.offset).encode()
        assert letter.headers[DeadLetterHeader.REASON.value] == b"malformed"
        assert letter.headers[DeadLetterHeader.CONSUMER.value] == b"audit"
        stage.index.refresh()
        assert stage.index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 1
        assert stage.index.count() == len(events)
        name = f"{prefix}:claim:dlq-audit:{stage.receipts_topic}:{sent.partition}:{sent.offset}"
        assert real._r.get(name) == b"done"  # confirmed once Kafka acknowledged it
    finally:
        keys = list(real._r.scan_iter(f"{prefix}:*"))
        if keys:
            real._r.delete(*keys)
        real.close()
        dead.close()


def test_a_dead_letter_kafka_refused_gives_its_claim_back_and_goes_out_once(
        stage: Stage) -> None:
    """The auditor claims a malformed receipt's dead letter, then Kafka refuses it for good
    (its dead-letter topic does not exist yet): the batch comes again and the claim, given
    back, does not stop the redelivery from sending it once the topic exists."""
    import redis

    prefix = f"t{stage.unique}"
    claims = RedisReceiptLog(redis.Redis.from_url(stage.settings.redis.url), prefix=prefix)
    late_topic = f"audit-test-{stage.unique}-late-deadletter"
    sent = stage.publisher.publish(stage.receipts_topic, f"r-{stage.unique}",
                                   b'{"event_id": "not a receipt"}').result(30)
    group = f"audit-test-{stage.unique}"
    # Undeliverable messages fail after 2 s rather than the default 5 min.
    publisher = KafkaEventPublisher(stage.settings.kafka, client_id=f"audit-test-{stage.unique}",
                                    extra={"message.timeout.ms": 2000})
    consumer = KafkaEventConsumer(stage.settings.kafka, group_id=group, topics=stage.topics,
                                  client_id=f"audit-test-{stage.unique}")
    worker = AuditWorker(
        consumer=consumer, index=stage.index, publisher=publisher, secret=SECRET,
        claims=claims,
        config=AuditConfig(batch_size=1000, linger_s=0.05, backoff_initial_s=0.2,
                           backoff_max_s=1.0, receipts_topic=stage.receipts_topic,
                           deadletter_topic=late_topic, retention_every_s=3600))
    name = f"{prefix}:claim:dlq-audit:{stage.receipts_topic}:{sent.partition}:{sent.offset}"

    def topic_appears() -> None:
        deadline = time.monotonic() + WAIT_S
        while publisher.stats().failed == 0:
            assert time.monotonic() < deadline, "the dead letter was never refused"
            time.sleep(0.2)
        assert stage.lag(group) >= 1  # not committed past the malformed receipt
        admin.ensure_topics(stage.settings.kafka, [TopicSpec(late_topic, 1)])

    try:
        stage.run_until_caught_up(worker, group, during=topic_appears)
        reader = KafkaEventConsumer(stage.settings.kafka, group_id=f"dl-reader-{time.time_ns()}",
                                    topics=[late_topic], client_id=f"dl-reader-{stage.unique}")
        letters: list[Record] = []
        try:
            deadline = time.monotonic() + WAIT_S
            while not letters and time.monotonic() < deadline:
                letters += reader.poll_batch(100, 0.5)
            letters += reader.poll_batch(100, 1.0)  # and nothing after it
        finally:
            reader.close()
        [letter] = letters
        assert letter.value == b'{"event_id": "not a receipt"}'
        assert letter.headers[DeadLetterHeader.OFFSET.value] == str(sent.offset).encode()
        assert claims._r.get(name) == b"done"  # confirmed by the delivery that went out
    finally:
        keys = list(claims._r.scan_iter(f"{prefix}:*"))
        if keys:
            claims._r.delete(*keys)
        claims.close()
        admin.delete_topics(stage.settings.kafka, [late_topic])
