"""The right to be forgotten on the real stack: `DELETE /me` ends the caller's login sessions
at once, and once the PostgreSQL and Redis sinks have applied `user.erased`, none of the
person's canary values is left in any table of PostgreSQL, any key or value under the
deployment's Redis prefix, the MongoDB catalog or the audit index (not even as the audit's
keyed pseudonyms), while another user's canaries all stay.

The module runs with crypto-shredding on (``privacy.encrypt_personal``): no record of any
topic, read as raw bytes from offset 0, holds a canary in clear; before the erasure both
users' sealed fields open, after it only the other user's do (the erased user's key is gone
from ``data_keys``), and a replay still leaves every store as it was.

The API, the PostgreSQL sink, a Redis sink and an auditor run against a database, a Redis
prefix and an audit index of their own, so the search covers everything this deployment
wrote."""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
from pymongo import MongoClient
from typer.testing import CliRunner
from uuid6 import uuid7

from polystream.api.login.tokens import token_digest
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.audit.worker import AuditConfig, AuditWorker, audit_secret
from polystream.bootstrap import receipt_log
from polystream.bus.admin import group_lag, start_group_at_end
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.topic_read import read_topics
from polystream.bus.topology import topic_specs, topics_for
from polystream.cli import app as cli
from polystream.domain.events import Sink
from polystream.observe.logs import QUIET_LOGGERS
from polystream.runtime.loop import ConsumerLoop
from polystream.settings import Settings
from polystream.shred import key_cache, wrap_consumer, wrap_publisher
from polystream.shred.bus import open_values
from polystream.sinks.ports import EventStore
from polystream.sinks.postgres.store import PostgresAccountStore
from polystream.sinks.redis_live import RedisLiveStore
from polystream.sinks.worker import SinkWorker, WorkerConfig

from .stack_platform import PASSWORD, Platform, bearer, running_platform

pytestmark = pytest.mark.stack

TITLE_ID = "01J9ZC3XK2M4N6P8Q0R2S4T6V8"


@dataclass(frozen=True)
class Person:
    user_id: str
    token: str
    #: Unique strings planted in the person's data: name, email, review, login device id
    #: (the device id is published in session.login_started; no store keeps it).
    canaries: tuple[str, ...]


@dataclass(frozen=True)
class World:
    platform: Platform
    prefix: str
    audit: OpenSearchAuditIndex
    #: Runs a second set of consumers over everything published since the world began (the
    #: erasure included) until they have caught up: a replay of the topics.
    replay: Callable[[], None]


def _workers(base: Settings, index: OpenSearchAuditIndex, tag: str,
             sinks: Sequence[Sink], keys: Settings) -> list[tuple[str, list[str], ConsumerLoop]]:
    """(group, topics, worker) per sink, each group starting at the topics' current end: only
    this test's events matter, and the topics may hold the history of a whole test run.
    ``keys``: the settings whose PostgreSQL database holds the data keys (the platform's)."""
    made: list[tuple[str, list[str], ConsumerLoop]] = []
    for sink in sinks:
        group = f"erase-{base.redis.key_prefix}-{tag}-{sink.value}"
        topics = [t.value for t in topics_for(sink)]
        start_group_at_end(base.kafka, group, topics)
        consumer = wrap_consumer(keys, KafkaEventConsumer(
            base.kafka, group_id=group, topics=topics, client_id=group), group,
            erases=sink is Sink.POSTGRES)
        publisher = wrap_publisher(keys, KafkaEventPublisher(base.kafka, client_id=group), group)
        worker: ConsumerLoop
        if sink is Sink.AUDIT:
            worker = AuditWorker(consumer=consumer, index=index, publisher=publisher,
                                 secret=audit_secret(base), config=AuditConfig(linger_s=0.005))
        else:
            store: EventStore = (
                PostgresAccountStore(base.postgres) if sink is Sink.POSTGRES
                else RedisLiveStore.from_settings(base.redis, prefix=base.redis.key_prefix))
            worker = SinkWorker(sink=sink, consumer=consumer, store=store, publisher=publisher,
                                receipts=receipt_log(base),
                                config=WorkerConfig(batch_size=500, linger_s=0.005))
        made.append((group, topics, worker))
    return made


def _start(workers: list[tuple[str, list[str], ConsumerLoop]],
           stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for _, _, w in workers]
    for thread in threads:
        thread.start()
    return threads


def _replay(base: Settings, replayers: list[tuple[str, list[str], ConsumerLoop]],
            ran: list[bool]) -> None:
    ran.append(True)  # their loops close their clients; otherwise the fixture does
    stop = threading.Event()
    threads = _start(replayers, stop)
    try:
        deadline = time.monotonic() + 30
        for group, topics, _ in replayers:
            while sum(group_lag(base.kafka, group, topics).values()) > 0:
                assert time.monotonic() < deadline, f"{group} did not catch up"
                time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


@pytest.fixture(scope="module")
def world(settings: Settings) -> Iterator[World]:
    prefix = f"erase{uuid.uuid4().hex[:8]}"
    # The API's login tokens and the Redis sink's state under one fresh prefix: the sink must
    # find the tokens where the API put them.
    base = settings.model_copy(update={
        "redis": settings.redis.model_copy(update={"key_prefix": prefix}),
        "privacy": settings.privacy.model_copy(update={"encrypt_personal": True})})
    index = OpenSearchAuditIndex(settings.opensearch.model_copy(
        update={"index_prefix": f"test-{prefix}"}))
    index.ensure()
    for platform in running_platform(base):  # its PostgreSQL sink runs already
        stop = threading.Event()
        keys = platform.settings
        threads = _start(_workers(base, index, "live", (Sink.REDIS, Sink.AUDIT), keys), stop)
        # Placed now, started by `replay`: they will read every event of the test.
        replayers = _workers(platform.settings, index, "replay",
                             (Sink.POSTGRES, Sink.REDIS, Sink.AUDIT), keys)

        replayed: list[bool] = []
        try:
            yield World(platform, prefix, index,
                        functools.partial(_replay, base, replayers, replayed))
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            if not replayed:  # a test failed before: their Kafka clients would hang the exit
                for _, _, worker in replayers:
                    worker.close()
            client = redis.Redis.from_url(settings.redis.url)
            for key in client.scan_iter(f"{prefix}:*", count=1000):
                client.delete(key)
            client.close()
            index.drop_everything()
            index.close()


def _plant(platform: Platform, tag: str) -> Person:
    name = f"Canary{tag}{uuid.uuid4().hex[:12]}"
    email = f"{name.lower()}@example.org"
    review = f"review-{tag}-{uuid.uuid4().hex}"
    device_id = str(uuid7())
    body = {"email": email, "password": PASSWORD, "display_name": name, "country": "PT",
            "birth_year": 1990}
    assert platform.client.post("/users", json=body).status_code == 202
    deadline = time.monotonic() + 20
    while (found := platform.accounts.get_user_by_email(email)) is None:
        assert time.monotonic() < deadline, "the PostgreSQL sink did not store the user"
        time.sleep(0.05)
    user_id = found.user_id
    login = platform.client.post("/auth/login", json={
        "email": email, "password": PASSWORD, "device": {"kind": "web", "device_id": device_id}})
    assert login.status_code == 200, login.text
    token = str(login.json()["access_token"])
    rated = platform.client.put(f"/titles/{TITLE_ID}/ratings/{user_id}",
                                json={"stars": 4, "review": review}, headers=bearer(token))
    assert rated.status_code == 202, rated.text
    return Person(user_id, token, (name, email, review, device_id))


def _postgres_text(platform: Platform) -> str:
    """Every row of every table of the deployment's database, as text."""
    with psycopg.connect(platform.settings.postgres.dsn()) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert {"users", "ratings", "payments", "preferences", "subscriptions"} <= set(tables)
        return "\n".join(str(row[0]) for table in tables
                         for row in conn.execute(f'SELECT t::text FROM "{table}" t'))


def _redis_value(client: redis.Redis, key: str) -> object:
    kind = str(client.type(key))
    if kind == "string":
        return client.get(key)
    if kind == "hash":
        return client.hgetall(key)
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return client.lrange(key, 0, -1)
    return kind


def _redis_text(settings: Settings, prefix: str) -> str:
    """Every key under the prefix with its whole value, whatever its type, as text."""
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    parts: list[str] = []
    try:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            parts.append(f"{key} {_redis_value(client, key)}")
    finally:
        client.close()
    return "\n".join(parts)


def _mongo_text(settings: Settings) -> str:
    client: MongoClient[dict[str, object]] = MongoClient(settings.mongo.url)
    try:
        db = client[settings.mongo.database]
        return "\n".join(str(doc) for name in db.list_collection_names()
                         for doc in db[name].find())
    finally:
        client.close()


def _audit_docs(index: OpenSearchAuditIndex) -> list[dict[str, Any]]:
    index.refresh()
    found = index.client.search(index=index.pattern, body={"query": {"match_all": {}},
                                                           "size": 10_000})
    return [hit["_source"] for hit in found["hits"]["hits"]]


def _pseudonyms(index: OpenSearchAuditIndex, user_id: str) -> set[str]:
    def walk(value: object) -> Iterator[str]:
        if isinstance(value, str) and value.startswith("hmac:"):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)

    return {h for d in _audit_docs(index) if d.get("user_id") == user_id
            for h in walk(d.get("payload"))}


def _topic_values(settings: Settings) -> list[bytes]:
    """Every record of every topic of the deployment, raw, from offset 0."""
    partitions = read_topics(settings.kafka, [s.name for s in topic_specs(settings.kafka)])
    return [rec.value for records in partitions.values() for rec in records if rec.value]


def _check_topics(settings: Settings, people: Sequence[Person],
                  readable: Sequence[Person]) -> None:
    """No canary of ``people`` in clear in any record; once opened with the data keys,
    exactly the canaries of ``readable`` come back (the others read as erased values)."""
    raw = _topic_values(settings)
    clear = {c for p in people for c in p.canaries if any(c.encode() in v for v in raw)}
    assert clear == set(), f"personal data in clear on the topics: {clear}"
    keys = key_cache(settings, "test-erasure")
    assert keys is not None
    try:
        opened = b"\n".join(open_values(raw, keys))
    finally:
        keys.close()
    for person in people:
        found = {c for c in person.canaries if c.encode() in opened}
        wanted = set(person.canaries) if person in readable else set()
        assert found == wanted, (person.user_id, found, wanted)


def _data_key(settings: Settings, user_id: str) -> tuple[bytes | None, object]:
    with psycopg.connect(settings.postgres.dsn()) as conn:
        row = conn.execute("SELECT data_key, erased_at FROM data_keys WHERE user_id = %s",
                           (user_id,)).fetchone()
    assert row is not None, f"no data key row for {user_id}"
    return (None if row[0] is None else bytes(row[0])), row[1]


def _wait(what: str, done: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _check_stores(world: World, settings: Settings, gone: Person, kept: Person,
                  own: set[str], kept_pseudonyms: set[str]) -> None:
    """Nothing of `gone` in any store; `kept` untouched."""
    platform = world.platform
    stores = {"postgresql": _postgres_text(platform),
              "redis": _redis_text(settings, world.prefix),
              "mongodb": _mongo_text(settings),
              "audit": "\n".join(json.dumps(d) for d in _audit_docs(world.audit))}
    hits = {(store, c) for store, text in stores.items()
            for c in (*gone.canaries, *own) if c in text}
    assert hits == set(), f"personal data left after erasure: {hits}"
    # Redis: the login token and everything keyed by the person are gone; only the erasure
    # marker (which makes later events of the person stale) still names the id.
    assert token_digest(gone.token) not in stores["redis"]
    naming = [line for line in stores["redis"].splitlines() if gone.user_id in line]
    erased_key = f"{world.prefix}:erased:{gone.user_id}"
    assert naming == [f"{erased_key} {naming[0].split(' ', 1)[1]}"], naming
    # The audit: no document names the person any more, yet the lineage of each of their
    # events stays (ids, types, times, the stores that applied it).
    assert gone.user_id not in stores["audit"]
    anonymous = [d for d in _audit_docs(world.audit) if d.get("erased")]
    assert {"user.registered", "session.login_started", "rating.submitted",
            "user.erased"} <= {d["type"] for d in anonymous}
    assert all(d["event_id"] and d["occurred_at"] and d["lineage"] for d in anonymous)
    assert all(h in stores["audit"] for h in kept_pseudonyms)
    assert kept.user_id in stores["audit"]
    # The other user is untouched: every canary still where it was.
    assert all(c in stores["postgresql"] for c in kept.canaries[:3])
    assert token_digest(kept.token) in stores["redis"]
    assert f"{world.prefix}:sessions:{kept.user_id}" in stores["redis"]


def test_erasure_leaves_no_personal_data_and_ends_sessions(
    world: World, settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    # Every log record of the API and the workers (all in this process), debug included.
    for name in QUIET_LOGGERS:  # as deployed: client libraries' request dumps stay off
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: it also sets the capturing handler's level
    platform = world.platform
    gone, kept = _plant(platform, "gone"), _plant(platform, "kept")
    accounts = platform.accounts
    _wait("reviews stored", lambda: all(
        any(r.review is not None for r in accounts.list_ratings(p.user_id))
        for p in (gone, kept)))
    _wait("login sessions applied by the Redis sink",
          lambda: all(f"{world.prefix}:sessions:{p.user_id}" in _redis_text(settings, world.prefix)
                      for p in (gone, kept)))
    _wait("events audited", lambda: all(
        sum(d.get("user_id") == p.user_id for d in _audit_docs(world.audit)) >= 3
        for p in (gone, kept)))
    # The audit keeps personal fields only as keyed pseudonyms ("hmac:…"): still personal
    # data, since they link the person's events; erasure must take them away too.
    pseudonyms = {p.user_id: _pseudonyms(world.audit, p.user_id) for p in (gone, kept)}
    # Values both share (same birth year, same client address) rightly stay with the other.
    own = pseudonyms[gone.user_id] - pseudonyms[kept.user_id]
    assert len(own) >= 3, pseudonyms  # email, display name, review, device id
    before = _postgres_text(platform)
    assert all(c in before for p in (gone, kept) for c in p.canaries[:3])
    assert all(token_digest(p.token) in _redis_text(settings, world.prefix)
               for p in (gone, kept))

    # Crypto-shredding: the topics hold both users' personal fields sealed, and both open.
    _check_topics(platform.settings, (gone, kept), readable=(gone, kept))
    assert all(len(_data_key(platform.settings, p.user_id)[0] or b"") == 32
               for p in (gone, kept))

    erased = platform.client.delete("/me", headers=bearer(gone.token))
    assert erased.status_code == 202, erased.text
    assert erased.json()["type"] == "user.erased"
    # At once, not when a sink gets to the event.
    refused = platform.client.get("/me", headers=bearer(gone.token))
    assert refused.status_code == 401, refused.text
    assert platform.client.get("/me", headers=bearer(kept.token)).status_code == 200

    erased_key = f"{world.prefix}:erased:{gone.user_id}"
    client = redis.Redis.from_url(settings.redis.url)
    try:
        _wait("user.erased applied by the Redis sink", lambda: client.exists(erased_key) == 1)
        assert list(client.scan_iter(f"{world.prefix}:auth:_user:{gone.user_id}")) == []
    finally:
        client.close()
    _wait("user.erased applied by the PostgreSQL sink",
          lambda: (u := accounts.get_user(gone.user_id)) is not None and u.erased)

    _wait("user.erased applied by the auditor", lambda: any(
        d.get("type") == "user.erased" and d.get("erased") for d in _audit_docs(world.audit)))
    _check_stores(world, settings, gone, kept, own, pseudonyms[kept.user_id])
    # The key is destroyed once the PostgreSQL sink committed the erasure: every copy of the
    # person's fields on every topic is unreadable; the other user's still open.
    _wait("the data key destroyed", lambda: _data_key(platform.settings, gone.user_id)[0] is None)
    assert _data_key(platform.settings, gone.user_id)[1] is not None
    _check_topics(platform.settings, (gone, kept), readable=(kept,))
    # A replay of every topic (PostgreSQL, Redis and audit consumers of groups of their own,
    # from before the first event) finds the erasure markers and brings nothing back.
    world.replay()
    _check_stores(world, settings, gone, kept, own, pseudonyms[kept.user_id])
    # The login token of the erased user is refused for good; a new login is impossible.
    assert platform.client.get("/me", headers=bearer(gone.token)).status_code == 401
    again = platform.client.post("/auth/login",
                                 json={"email": gone.canaries[1], "password": PASSWORD})
    assert again.status_code == 401
    # The logs never held the person's data in the first place.
    assert "accepted user.erased" in caplog.text
    logged = {c for c in (*gone.canaries, gone.token, *own) if c in caplog.text}
    assert logged == set()


def test_an_operator_erases_an_account_from_the_command_line(world: World) -> None:
    platform = world.platform
    person = _plant(platform, "cli")
    assert platform.client.get("/me", headers=bearer(person.token)).status_code == 200
    env = {"POLYSTREAM_POSTGRES__DATABASE": platform.settings.postgres.database,
           "POLYSTREAM_REDIS__KEY_PREFIX": world.prefix}
    result = CliRunner().invoke(cli, ["users", "erase", person.canaries[1]], env=env)
    assert result.exit_code == 0, result.output
    # 1, or 0 when the Redis sink applied the event first (it ends the sessions as well).
    assert re.search(r"user\.erased published .*; [01] login session\(s\) ended",
                     " ".join(result.output.split())), result.output
    assert platform.client.get("/me", headers=bearer(person.token)).status_code == 401
    _wait("user.erased applied by the PostgreSQL sink",
          lambda: (u := platform.accounts.get_user(person.user_id)) is not None and u.erased)
    again = CliRunner().invoke(cli, ["users", "erase", person.canaries[1]], env=env)
    assert again.exit_code == 1 and "no live account" in again.output
