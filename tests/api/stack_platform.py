"""The API on the real stack with a real PostgreSQL sink behind it, for tests that need users
to exist: the API publishes to Kafka, the sink (a thread, in its own fresh database and
consumer group) stores the users, and the API logs them in from that database."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from pydantic import SecretStr

from polystream.api import create_app
from polystream.api.deps import ApiDeps
from polystream.bootstrap import receipt_log
from polystream.bootstrap_api import build_deps
from polystream.bus.admin import ensure_topics, group_lag
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.topology import topic_specs, topics_for
from polystream.domain.events import Sink
from polystream.settings import Settings
from polystream.shred import wrap_consumer, wrap_publisher
from polystream.sinks.postgres.migrate import upgrade
from polystream.sinks.postgres.store import PostgresAccountStore
from polystream.sinks.worker import SinkWorker, WorkerConfig

from .conftest import OPERATOR_TOKEN

PASSWORD = "a long enough passphrase"


@dataclass
class Platform:
    settings: Settings
    deps: ApiDeps
    client: TestClient
    accounts: PostgresAccountStore

    def register(self, tag: str = "user", role: str = "user") -> tuple[str, str]:
        """A new account, stored by the sink and logged in: (user id, access token)."""
        email = f"{tag}-{uuid.uuid4().hex[:10]}@example.org"
        body = {"email": email, "password": PASSWORD, "display_name": tag.title(),
                "country": "PT", "birth_year": 1990}
        assert self.client.post("/users", json=body).status_code == 202
        deadline = time.monotonic() + 20
        while self.accounts.get_user_by_email(email) is None:
            assert time.monotonic() < deadline, "the PostgreSQL sink did not store the user"
            time.sleep(0.05)
        if role != "user":
            self.accounts.set_role(email, role)
        token = self.login(email)
        credentials = self.accounts.get_user_by_email(email)
        assert credentials is not None
        return credentials.user_id, token

    def login(self, email: str, password: str = PASSWORD, **kwargs: Any) -> str:
        response = self.client.post("/auth/login", json={"email": email,
                                                         "password": password}, **kwargs)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_octet() -> int:
    return 1 + uuid.uuid4().int % 250


def running_platform(base: Settings, **api: Any) -> Iterator[Platform]:
    run = uuid.uuid4().hex[:8]
    db = f"auth_{run}"
    with psycopg.connect(base.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    pg = base.postgres.model_copy(update={"database": db})
    settings = base.model_copy(update={
        "postgres": pg,
        "api": base.api.model_copy(update={"operator_token": SecretStr(OPERATOR_TOKEN),
                                           **api}),
    })
    upgrade(pg)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    group = f"auth-{run}"
    topics = [t.value for t in topics_for(Sink.POSTGRES)]
    # From the start of the topics (as the e2e tests do): other tests' history lands in this
    # fresh database, which only this module reads.
    # Opens sealed personal fields and destroys erased users' keys when shredding is on.
    consumer = wrap_consumer(settings, KafkaEventConsumer(
        settings.kafka, group_id=group, topics=topics, client_id=group), group, erases=True)
    worker = SinkWorker(
        sink=Sink.POSTGRES, consumer=consumer, store=PostgresAccountStore(pg),
        publisher=wrap_publisher(settings, KafkaEventPublisher(settings.kafka, client_id=group),
                                 group),
        receipts=receipt_log(settings), config=WorkerConfig(batch_size=500, linger_s=0.005))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    accounts = PostgresAccountStore(pg)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # idle: whatever the topics held is processed
            lag = group_lag(settings.kafka, group, topics)
            if lag and sum(lag.values()) == 0:
                break
            time.sleep(0.2)
        deps = build_deps(settings)
        # An address of its own: login limits per address are counted in the shared Redis.
        address = f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{run_octet()}"
        with TestClient(create_app(deps), client=(address, 50000)) as client:
            yield Platform(settings, deps, client, accounts)
    finally:
        stop.set()
        thread.join(30)
        accounts.close()
        with psycopg.connect(base.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
