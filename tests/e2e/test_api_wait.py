"""Read-your-writes on the real stack: the API publishes to Kafka, the real PostgreSQL sink
persists (or rejects) and records its receipt in Redis, and the API answers with it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from polystream.api import create_app
from polystream.bootstrap import receipt_log
from polystream.bootstrap_api import build_deps
from polystream.bus.admin import ensure_topics, group_lag
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.topology import topic_specs, topics_for
from polystream.domain.events import Sink
from polystream.settings import Settings
from polystream.shred import wrap_consumer
from polystream.sinks.postgres.migrate import upgrade
from polystream.sinks.postgres.store import PostgresAccountStore
from polystream.sinks.worker import SinkWorker, WorkerConfig

pytestmark = [pytest.mark.stack]


@pytest.fixture(scope="module")
def running_sink(settings: Settings) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:8]
    db = f"wait_{run}"
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    pg = settings.postgres.model_copy(update={"database": db})
    upgrade(pg)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    group = f"wait-{run}"
    topics = [t.value for t in topics_for(Sink.POSTGRES)]
    running = settings.model_copy(update={"postgres": pg})
    worker = SinkWorker(
        sink=Sink.POSTGRES,
        # As the real sink: sealed personal fields opened, keys destroyed on erasure (the
        # API below seals with this database's keys).
        consumer=wrap_consumer(running, KafkaEventConsumer(
            settings.kafka, group_id=group, topics=topics, client_id=group), group,
            erases=True),
        store=PostgresAccountStore(pg),
        publisher=KafkaEventPublisher(settings.kafka, client_id=group),
        receipts=receipt_log(settings),
        config=WorkerConfig(batch_size=500, linger_s=0.005))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # idle: whatever the topics held is processed
            lag = group_lag(settings.kafka, group, topics)
            if lag and sum(lag.values()) == 0:
                break
            time.sleep(0.2)
        # The API reads accounts from the sink's database.
        yield running
    finally:
        stop.set()
        thread.join(30)
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_register_then_log_in_and_a_taken_email_is_not_revealed(
        running_sink: Settings) -> None:
    """Registration answers 202 whatever the stores decide; the real sink stores the account
    (the new user can log in within seconds) and silently refuses the same email again."""
    email = f"wait-{uuid.uuid4().hex[:8]}@example.org"
    body = {"email": email, "password": "a long enough passphrase", "display_name": "Wai",
            "country": "PT", "birth_year": 1990}
    login = {"email": email, "password": body["password"]}
    with TestClient(create_app(build_deps(running_sink))) as client:
        t0 = time.monotonic()
        first = client.post("/users?wait=5", json=body)
        assert first.status_code == 202, first.text
        while (answer := client.post("/auth/login", json=login)).status_code != 200:
            assert answer.status_code == 401, answer.text
            assert time.monotonic() - t0 < 5.0, "the account was not stored in time"
            time.sleep(0.05)
        stored_s = time.monotonic() - t0
        # Each try costs an argon2id verification (~0.3 s here): a few tries at most.
        assert stored_s < 3.0, f"login possible only after {stored_s:.2f}s"

        again = client.post("/users?wait=5", json={**body, "display_name": "Other",
                                                    "password": "another passphrase!"})
        assert again.status_code == 202 and again.json() == first.json()
        time.sleep(0.5)
        refused = client.post("/auth/login", json={**login, "password": "another passphrase!"})
        assert refused.status_code == 401
        assert client.post("/auth/login", json=login).status_code == 200
