"""The whole S1 → Kafka → S2 pipeline on the real stack (issue 4's acceptance).

100,000 simulated events (seed 7) plus a malformed record and an event of unknown type go to
the real topics; two workers per sink drain them into PostgreSQL, FerretDB and Redis; every
store must then hold exactly what the event stream implies (recomputed from the events by the
reference stores), and a replay of every topic from offset 0 by fresh workers must change
nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from polystream.bus.admin import delete_topics, ensure_topics, group_lag
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.topology import DeadLetterHeader, Topic, topic_specs, topics_for
from polystream.domain.events import Sink, decode
from polystream.receipts.redis_log import RedisReceiptLog
from polystream.settings import Settings
from polystream.simulate import SimConfig, generate
from polystream.sinks.mongo import MongoCatalogStore
from polystream.sinks.ports import EventStore
from polystream.sinks.postgres.migrate import upgrade
from polystream.sinks.postgres.store import PostgresAccountStore
from polystream.sinks.redis_live import RedisLiveStore
from polystream.sinks.worker import SinkWorker, WorkerConfig
from polystream.stack.manager import Stack
from polystream.verify import compare_live, compare_rows, expected_state

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N_EVENTS = 100_000
SEED = 7
STORE_SINKS = (Sink.POSTGRES, Sink.MONGO, Sink.REDIS)


class Env:
    def __init__(self, settings: Settings, run: str) -> None:
        self.run = run
        self.settings = settings.model_copy(update={
            "postgres": settings.postgres.model_copy(update={"database": f"e2e_{run}"})})
        self.mongo_db = f"e2e_{run}"
        self.prefix = f"e2e{run}"

    def store(self, sink: Sink) -> EventStore:
        if sink is Sink.POSTGRES:
            return PostgresAccountStore(self.settings.postgres)
        if sink is Sink.MONGO:
            store = self.catalog()
            store.ensure_indexes()
            return store
        return RedisLiveStore(self.settings.redis.url, prefix=self.prefix)

    def catalog(self) -> MongoCatalogStore:
        return MongoCatalogStore.from_settings(
            self.settings.mongo.model_copy(update={"database": self.mongo_db}))


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Env]:
    e = Env(settings, uuid.uuid4().hex[:8])
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE e2e_{e.run}")
    upgrade(e.settings.postgres)
    # A clean slate of topics: earlier tests leave events in the shared ones.
    names = [s.name for s in topic_specs(settings.kafka)]
    delete_topics(settings.kafka, names)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    deadline = time.monotonic() + 60
    while set(names) & set(admin.list_topics(timeout=10).topics):
        assert time.monotonic() < deadline, "topics were not deleted"
        time.sleep(0.5)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    try:
        yield e
    finally:
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS e2e_{e.run} WITH (FORCE)")
        MongoClient(settings.mongo.url).drop_database(e.mongo_db)
        r = redis.Redis.from_url(settings.redis.url)
        for key in r.scan_iter(f"{e.prefix}*", count=1000):
            r.delete(key)


def _drain(env: Env, group_suffix: str, workers_per_sink: int,
           timeout_s: float = 420) -> dict[Sink, float]:
    """Run the sinks until every group has no lag and nothing deferred; seconds per sink."""
    stop = threading.Event()
    workers: dict[Sink, list[SinkWorker]] = {}
    threads: list[threading.Thread] = []
    # Receipts under their own prefix: they are not part of the live state being compared.
    receipts = RedisReceiptLog(redis.Redis.from_url(env.settings.redis.url),
                               prefix=f"{env.prefix}-receipts")
    for sink in STORE_SINKS:
        group = f"e2e-{env.run}-{group_suffix}-{sink.value}"
        for i in range(workers_per_sink):
            w = SinkWorker(
                sink=sink,
                consumer=KafkaEventConsumer(env.settings.kafka, group_id=group,
                                            topics=[t.value for t in topics_for(sink)],
                                            client_id=f"{group}-{i}"),
                store=env.store(sink),
                publisher=KafkaEventPublisher(env.settings.kafka, client_id=f"{group}-{i}"),
                receipts=receipts,
                config=WorkerConfig(batch_size=1000, linger_s=0.05))
            workers.setdefault(sink, []).append(w)
            t = threading.Thread(target=w.run, args=(stop,), daemon=True)
            t.start()
            threads.append(t)
    t0 = time.monotonic()
    took: dict[Sink, float] = {}
    try:
        while len(took) < len(STORE_SINKS):
            assert time.monotonic() - t0 < timeout_s, f"not drained: {took}"
            assert all(t.is_alive() for t in threads), "a worker thread died"
            for sink in STORE_SINKS:
                if sink in took:
                    continue
                group = f"e2e-{env.run}-{group_suffix}-{sink.value}"
                lag = group_lag(env.settings.kafka, group,
                                [t.value for t in topics_for(sink)])
                if lag and sum(lag.values()) == 0 and not any(w.deferred
                                                              for w in workers[sink]):
                    took[sink] = time.monotonic() - t0
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return took


def _dumps(env: Env) -> dict[str, Any]:
    pg = PostgresAccountStore(env.settings.postgres)
    mg = env.catalog()
    rd = RedisLiveStore(env.settings.redis.url, prefix=env.prefix)
    try:
        return {"postgres": pg.dump(), "mongo": mg.snapshot(), "redis": rd.dump()}
    finally:
        pg.close()
        mg.close()
        rd.close()


def _dead_letters(settings: Settings, run: str) -> list[Any]:
    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                  "group.id": f"e2e-dlq-{run}-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([Topic.DEADLETTER.value])
    out: list[Any] = []
    idle = 0
    while idle < 6:
        msgs = c.consume(500, timeout=1.0)
        idle = 0 if msgs else idle + 1
        out += [m for m in msgs
                if m.error() is None and (m.key() or b"").decode().endswith(f"-{run}")]
    c.close()
    return out


def test_stores_hold_what_the_stream_implies_and_replay_changes_nothing(
        env: Env, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    stream = list(generate(SimConfig(seed=SEED), N_EVENTS))
    pub = KafkaEventPublisher(settings.kafka, client_id=f"e2e-{env.run}")
    t0 = time.monotonic()
    for i, ev in enumerate(stream):
        pub.publish_fire(ev.topic, ev.key, ev.value)
        if i == 10:
            pub.publish_fire(Topic.USERS.value, f"bad-1-{env.run}", b"{this is not json")
            pub.publish_fire(Topic.USERS.value, f"bad-2-{env.run}",
                             b'{"type":"user.teleported","schema_version":1,"event_id":'
                             b'"0190c6b0-0000-7000-8000-000000000000","occurred_at":'
                             b'"2026-01-01T00:00:00Z","payload":{}}')
    pub.flush(60)
    publish_s = time.monotonic() - t0
    assert pub.stats().acked == N_EVENTS + 2
    pub.close()

    took = _drain(env, "first", workers_per_sink=2)
    actual = _dumps(env)
    ref = expected_state(decode(ev.value) for ev in stream)
    diffs = (compare_rows("postgres", ref.accounts.dump(), actual["postgres"])
             + compare_rows("mongo", ref.catalog.snapshot(), actual["mongo"])
             + compare_live(ref.live.dump(), actual["redis"]))
    bad = [d for d in diffs if not d.ok]
    assert bad == [], "\n".join(f"{d.store}.{d.part} expected {d.expected} got {d.actual}: "
                                f"{d.samples}" for d in bad)
    assert sum(len(rows) for rows in actual["postgres"].values()) > 1000
    assert len(actual["redis"]) > 1000

    dead = _dead_letters(settings, env.run)
    reasons = sorted(dict(m.headers() or [])[DeadLetterHeader.REASON.value].decode()
                     for m in dead)
    assert reasons == ["malformed", "unknown_type"]

    # Replay: fresh groups read every topic from offset 0 again (one worker per sink).
    _drain(env, "replay", workers_per_sink=1)
    assert _dumps(env) == actual
    assert len(_dead_letters(settings, env.run)) == 2

    with capsys.disabled():
        counts = {Sink.POSTGRES: 0, Sink.MONGO: 0, Sink.REDIS: 0}
        from polystream.domain.events import EVENT_TYPES
        for ev in stream:
            for sink in EVENT_TYPES[ev.type].consumers:
                if sink in counts:
                    counts[sink] += 1
        print(f"\n[e2e] published {N_EVENTS + 2:,} in {publish_s:.1f}s; drained (2 workers "
              "per sink, from the first record to lag 0):")
        for sink, seconds in took.items():
            print(f"[e2e]   {sink.value:8} {counts[sink]:>7,} events in {seconds:6.1f}s")




def test_the_audit_trail_holds_one_document_per_event_with_its_lineage(
        env: Env, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the pipeline test above (same module): every event and every receipt is
    already on the topics."""
    from polystream.audit.documents import DocKind
    from polystream.audit.opensearch import OpenSearchAuditIndex
    from polystream.audit.ports import AuditQuery
    from polystream.audit.worker import AuditConfig, AuditWorker
    from polystream.domain.events import EVENT_TYPES

    os_settings = settings.opensearch.model_copy(update={"index_prefix": f"e2e-{env.run}"})
    index = OpenSearchAuditIndex(os_settings)
    index.ensure()
    all_topics = [t.value for t in topics_for(Sink.AUDIT)]
    try:
        def run(group: str, *, outage_s: float = 0, fold_s: float = 0) -> float:
            stop = threading.Event()
            worker = AuditWorker(
                consumer=KafkaEventConsumer(settings.kafka, group_id=group, topics=all_topics,
                                            client_id=group),
                index=OpenSearchAuditIndex(os_settings),
                publisher=KafkaEventPublisher(settings.kafka, client_id=group),
                secret=b"e2e-audit-key", config=AuditConfig(fold_window_s=fold_s))
            thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
            t0 = time.monotonic()
            thread.start()
            try:
                if outage_s:
                    # The search engine goes away mid-run and comes back.
                    time.sleep(3)
                    stack = Stack(settings)
                    stack.down(["opensearch"])
                    time.sleep(outage_s)
                    assert thread.is_alive(), "auditor died during the outage"
                    stack.up(["opensearch"])
                while True:
                    assert time.monotonic() - t0 < 500, "auditor did not drain"
                    assert thread.is_alive(), "auditor died"
                    lag = group_lag(settings.kafka, group, all_topics)
                    if lag and sum(lag.values()) == 0:
                        return time.monotonic() - t0
                    time.sleep(0.5)
            finally:
                stop.set()
                thread.join(30)

        # Receipts folded into held documents (as `worker all` runs it), through an outage
        # that rewinds whatever is held; the replay below writes without folding.
        took = run(f"e2e-{env.run}-audit", outage_s=30, fold_s=2.0)
        index.refresh()
        assert index.count() == N_EVENTS
        assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 2
        stream = list(generate(SimConfig(seed=SEED), N_EVENTS))
        for ev in stream[:: N_EVENTS // 200]:
            env_ = decode(ev.value)
            record = index.get(env_.event_id)
            assert record is not None, ev.type
            wanted = {s.value for s in EVENT_TYPES[ev.type].consumers}
            assert wanted <= set(record.lineage), (ev.type, record.lineage)

        # Nothing secret was indexed: the simulated users' password and its hash, card-like
        # numbers.
        from opensearchpy import helpers

        from polystream.domain.events import find_card_data
        from polystream.simulate import password_hash

        secrets = {"polystream-sim-7", password_hash("polystream-sim-7", SEED)}
        scanned = 0
        for hit in helpers.scan(index.client, index=f"e2e-{env.run}-*",
                                query={"query": {"match_all": {}}}, size=2000):
            text = json.dumps(hit["_source"])
            assert not any(secret in text for secret in secrets), hit["_id"]
            assert find_card_data(hit["_source"]) == [], hit["_id"]
            scanned += 1
        assert scanned >= N_EVENTS

        run(f"e2e-{env.run}-audit-replay")
        index.refresh()
        assert index.count() == N_EVENTS
        with capsys.disabled():
            print(f"\n[e2e] auditor: {N_EVENTS:,} events + their receipts indexed in "
                  f"{took:.1f}s, including a 30 s OpenSearch outage and its restart")
    finally:
        index.client.indices.delete(index=f"e2e-{env.run}-*", ignore_unavailable=True)
        index.close()
