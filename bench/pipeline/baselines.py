"""What each store does with the pipeline's own events without polystream in the way.

* **raw**: each store's share of the full-speed phase's events written through the bare
  client in batches, doing the least the job needs (the component benches' baselines, on the
  pipeline's events): PostgreSQL ``COPY`` of one row per event into a plain table (500 per
  transaction), Redis one ``HSET`` per event in pipelines of 1,000, FerretDB
  ``insert_many(ordered=False)`` of 500 documents, OpenSearch ``_bulk`` of 1,000 ``index``
  actions into an index that maps only the envelope fields. The events are parsed before the
  clock.
* **naive**: the textbook consumer: read one record from Kafka, open its sealed personal
  fields (crypto-shredding; keys cached as in the workers), decode it with the contract,
  write it to the store in its own transaction, commit the offset synchronously, next. Run
  over the same records for a bounded time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from confluent_kafka import Consumer, TopicPartition
from pymongo import MongoClient

from bench.b_postgres import COPY_PLAIN, CREATE_PLAIN
from bench.pipeline.isolation import (
    Workspace,
    clear_redis_db,
    create_database,
    drop_database,
    drop_mongo_database,
    redis_client,
)
from bench.pipeline.kafka_offsets import TP
from polystream.bus.kafka import consumer_config
from polystream.bus.topology import topics_for
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import EVENT_TYPES, Sink, decode
from polystream.shred import opening_keys
from polystream.shred.bus import open_values
from polystream.simulate import SimEvent

PG_BATCH: Final = 500
REDIS_BATCH: Final = 1000
MONGO_BATCH: Final = 500
OS_BATCH: Final = 1000

_INSERT_ONE: Final = """
INSERT INTO events (event_id, event_type, key, occurred_at, payload)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING
"""


@dataclass
class Measured:
    """One baseline's run: ``events`` written in ``seconds``."""

    store: str
    kind: str
    events: int = 0
    seconds: float = 0.0
    records_read: int = 0
    description: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "rate": self.rate}


def _share(events: Sequence[SimEvent], sink: Sink) -> list[dict[str, Any]]:
    wanted = {t for t, spec in EVENT_TYPES.items() if sink in spec.consumers}
    return [json.loads(e.value) for e in events if e.type in wanted]


def _timed(measured: Measured, work: Callable[[], int]) -> Measured:
    t0 = time.perf_counter()
    measured.events = work()
    measured.seconds = time.perf_counter() - t0
    return measured


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def raw_postgres(ws: Workspace, events: Sequence[SimEvent]) -> Measured:
    docs = _share(events, Sink.POSTGRES)
    rows = [(d["event_id"], d["type"], d["key"], d["occurred_at"], json.dumps(d["payload"]))
            for d in docs]
    name = f"bench_{ws.run_id}_raw"
    create_database(ws.settings.postgres, name)
    ws.databases.append(name)
    measured = Measured("postgres", "raw", description=f"COPY, {PG_BATCH} rows/transaction")
    try:
        dsn = ws.settings.postgres.model_copy(update={"database": name}).dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(CREATE_PLAIN)
            cursor = conn.cursor()

            def work() -> int:
                for batch in _chunks(rows, PG_BATCH):
                    with conn.transaction(), cursor.copy(COPY_PLAIN) as out:
                        for row in batch:
                            out.write_row(row)
                return len(rows)

            _timed(measured, work)
            counted = conn.execute("SELECT count(*) FROM events").fetchone()
        if not counted or counted[0] != len(rows):
            measured.problems.append(f"{counted} rows of {len(rows)}")
    finally:
        drop_database(ws.settings.postgres, name)
        ws.databases.remove(name)
    return measured


def raw_redis(ws: Workspace, events: Sequence[SimEvent], db: int) -> Measured:
    docs = _share(events, Sink.REDIS)
    mappings = [(f"bench:raw:{d['event_id']}",
                 {"type": d["type"], "key": d["key"], "t": d["occurred_at"],
                  "payload": json.dumps(d["payload"])}) for d in docs]
    measured = Measured("redis", "raw",
                        description=f"HSET per event, pipelines of {REDIS_BATCH} (no MULTI)")
    client = redis_client(ws.settings, db)
    try:
        def work() -> int:
            for batch in _chunks(mappings, REDIS_BATCH):
                pipe = client.pipeline(transaction=False)
                for key, mapping in batch:
                    pipe.hset(key, mapping=mapping)
                pipe.execute()
            return len(mappings)

        _timed(measured, work)
    finally:
        client.close()
        clear_redis_db(ws.settings, db, keep_claim=True)
    return measured


def raw_mongo(ws: Workspace, events: Sequence[SimEvent]) -> Measured:
    docs = [{"_id": d["event_id"], "type": d["type"], "key": d["key"],
             "occurred_at": d["occurred_at"], "payload": d["payload"]}
            for d in _share(events, Sink.MONGO)]
    name = f"bench_{ws.run_id}_raw"
    measured = Measured("mongo", "raw",
                        description=f"insert_many(ordered=False), {MONGO_BATCH} documents/call")
    client: MongoClient[dict[str, Any]] = MongoClient(ws.settings.mongo.url,
                                                     serverSelectionTimeoutMS=5000)
    try:
        collection = client[name]["events"]

        def work() -> int:
            inserted = 0
            for batch in _chunks(docs, MONGO_BATCH):
                inserted += len(collection.insert_many(list(batch), ordered=False).inserted_ids)
            return inserted

        _timed(measured, work)
        if measured.events != len(docs):
            measured.problems.append(f"{measured.events} inserted of {len(docs)}")
    finally:
        client.close()
        drop_mongo_database(ws.settings, name)
    return measured


def raw_opensearch(ws: Workspace, events: Sequence[SimEvent]) -> Measured:
    from opensearchpy import OpenSearch, helpers

    docs = _share(events, Sink.AUDIT)
    index = f"bench-{ws.run_id}-raw"
    measured = Measured("audit", "raw",
                        description=f"_bulk of index actions, {OS_BATCH}/request, envelope "
                        "fields mapped")
    client = OpenSearch(ws.settings.opensearch.url, timeout=60)
    ws.indices.append(index)
    try:
        client.indices.create(index=index, body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"dynamic": False, "properties": {
                "event_id": {"type": "keyword"}, "type": {"type": "keyword"},
                "key": {"type": "keyword"}, "occurred_at": {"type": "date"}}},
        })
        actions = [{"_op_type": "index", "_index": index, "_id": d["event_id"], "_source": d}
                   for d in docs]
        failed: list[Any] = []

        def work() -> int:
            ok, errors = helpers.bulk(client, actions, chunk_size=OS_BATCH,
                                      raise_on_error=False)
            if isinstance(errors, list):
                failed.extend(errors)
            return int(ok)

        _timed(measured, work)
        if failed or measured.events != len(docs):
            measured.problems.append(f"{len(failed)} failed, {measured.events} of {len(docs)}")
    finally:
        client.indices.delete(index=index, params={"ignore_unavailable": "true"})
        ws.indices.remove(index)
        client.close()
    return measured


# -- naive: one event at a time, a commit per event ------------------------------------------


def _naive(ws: Workspace, sink: Sink, starts: Mapping[TP, int], ends: Mapping[TP, int],
           budget_s: float, write: Callable[[dict[str, Any]], None],
           measured: Measured) -> Measured:
    topics = {t.value for t in topics_for(sink)}
    wanted = {t for t, spec in EVENT_TYPES.items() if sink in spec.consumers}
    parts = {tp: off for tp, off in starts.items() if tp[0] in topics and ends[tp] > off}
    group = f"bench-{ws.run_id}-naive-{sink.value}"
    ws.groups.append(group)
    consumer = Consumer(consumer_config(ws.settings.kafka, group, group))
    consumer.assign([TopicPartition(t, p, off) for (t, p), off in parts.items()])
    left = {tp: ends[tp] for tp in parts}
    keys = opening_keys(ws.settings, "bench-naive")  # the phases' key database (Names)
    try:
        t0 = time.perf_counter()
        while left and time.perf_counter() - t0 < budget_s:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            tp: TP = (msg.topic() or "", msg.partition() or 0)
            measured.records_read += 1
            [value] = open_values([msg.value() or b""], keys)
            try:
                event = decode(value)
            except InvalidEvent:
                event = None
            if event is not None and event.type in wanted:
                write(json.loads(value))
                measured.events += 1
            consumer.commit(message=msg, asynchronous=False)
            if (msg.offset() or 0) + 1 >= left.get(tp, 0):
                left.pop(tp, None)
        measured.seconds = time.perf_counter() - t0
    finally:
        consumer.close()
        keys.close()
    return measured


def naive_postgres(ws: Workspace, starts: Mapping[TP, int], ends: Mapping[TP, int],
                   budget_s: float) -> Measured:
    name = f"bench_{ws.run_id}_naive"
    create_database(ws.settings.postgres, name)
    ws.databases.append(name)
    measured = Measured("postgres", "naive",
                        description="poll one record, decode, INSERT, COMMIT, synchronous "
                        "Kafka commit")
    try:
        dsn = ws.settings.postgres.model_copy(update={"database": name}).dsn()
        with psycopg.connect(dsn) as conn:
            conn.execute(CREATE_PLAIN)
            conn.commit()

            def write(d: dict[str, Any]) -> None:
                conn.execute(_INSERT_ONE, (d["event_id"], d["type"], d["key"],
                                           d["occurred_at"], json.dumps(d["payload"])))
                conn.commit()

            _naive(ws, Sink.POSTGRES, starts, ends, budget_s, write, measured)
    finally:
        drop_database(ws.settings.postgres, name)
        ws.databases.remove(name)
    return measured


def naive_redis(ws: Workspace, starts: Mapping[TP, int], ends: Mapping[TP, int],
                budget_s: float, db: int) -> Measured:
    measured = Measured("redis", "naive",
                        description="poll one record, decode, HSET, synchronous Kafka commit")
    client = redis_client(ws.settings, db)
    try:
        def write(d: dict[str, Any]) -> None:
            client.hset(f"bench:naive:{d['event_id']}", mapping={
                "type": d["type"], "key": d["key"], "t": d["occurred_at"],
                "payload": json.dumps(d["payload"])})

        _naive(ws, Sink.REDIS, starts, ends, budget_s, write, measured)
    finally:
        client.close()
        clear_redis_db(ws.settings, db, keep_claim=True)
    return measured
