"""The write API under test: the in-memory broker and receipt log behind FastAPI's TestClient."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import SecretStr

from polystream.api import ApiDeps, create_app
from polystream.api.login.store import InMemorySessionStore, LoginSession
from polystream.api.login.tokens import new_token, token_digest
from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import EventPublisher, Record
from polystream.bus.topology import Topic, topic_specs
from polystream.domain.events import (
    EVENT_TYPES,
    Envelope,
    Receipt,
    ReceiptStatus,
    Sink,
    UserRegistered,
    decode,
    new_event,
)
from polystream.domain.examples import USER_ID
from polystream.receipts import InMemoryReceiptLog
from polystream.settings import ApiSettings, KafkaSettings, Settings
from polystream.sinks.memory_accounts import InMemoryAccountStore

OPERATOR_TOKEN = "operator-token-for-tests-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
# Real argon2id, cheap parameters: the tests check the hash, not its cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ALL_TOPICS = [topic.value for topic in Topic]


def make_settings(**api: Any) -> Settings:
    values: dict[str, Any] = {
        "operator_token": SecretStr(OPERATOR_TOKEN),
        "wait_max_s": 2.0,
        "publish_timeout_s": 2.0,
        **api,
    }
    return Settings(api=ApiSettings(**values))


def new_broker() -> InMemoryBroker:
    # Like our Kafka: topics exist because they were created, publishing elsewhere fails.
    broker = InMemoryBroker(auto_create_topics=False)
    broker.ensure_topics(topic_specs(KafkaSettings()))
    return broker


#: The account every harness starts with, logged in: the client sends its token by default.
OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "correct horse battery staple"
OTHER_USER_ID = "0194a1b2-0000-7000-8000-0000000000f2"
OWNER_TOKEN = "owner-token-for-tests-0123456789abcdef"
OWNER_AUTH = {"Authorization": f"Bearer {OWNER_TOKEN}"}
OTHER_EMAIL = "other@example.com"


def add_account(accounts: InMemoryAccountStore, user_id: str, email: str,
                password: str = OWNER_PASSWORD, role: str = "user") -> None:
    accounts.apply([new_event(UserRegistered(
        user_id=user_id, email=email, display_name="Test", country="PT", birth_year=1990,
        password_hash=FAST_HASHER.hash(password)), source="tests")])
    if role != "user":
        accounts.set_role(email, role)


def login(client: TestClient, email: str, password: str = OWNER_PASSWORD) -> dict[str, str]:
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Harness:
    broker: InMemoryBroker
    receipts: InMemoryReceiptLog
    client: TestClient
    settings: Settings
    reader: InMemoryEventConsumer
    accounts: InMemoryAccountStore

    def total_records(self) -> int:
        return sum(sum(self.broker.end_offsets(t).values()) for t in ALL_TOPICS)

    def new_records(self) -> list[Record]:
        """Everything published since the previous call."""
        records = self.reader.poll_batch(10_000, 0.0)
        self.reader.commit(records)
        return records

    def new_events(self) -> list[tuple[Record, Envelope[Any]]]:
        return [(record, decode(record.value or b"")) for record in self.new_records()]


def make_harness(
    settings: Settings | None = None,
    publisher: EventPublisher | None = None,
    broker: InMemoryBroker | None = None,
    receipts: InMemoryReceiptLog | None = None,
    **deps: Any,
) -> Iterator[Harness]:
    broker = broker or new_broker()
    settings = settings or make_settings()
    receipts = receipts or InMemoryReceiptLog()
    accounts = InMemoryAccountStore()
    add_account(accounts, USER_ID, OWNER_EMAIL)
    add_account(accounts, OTHER_USER_ID, OTHER_EMAIL)
    deps.setdefault("accounts", accounts)
    # The owner's session is put in the store directly (a login would publish an event,
    # which tests of publishing failures could not afford).
    sessions = InMemorySessionStore()
    sessions.create(token_digest(OWNER_TOKEN),
                    LoginSession("0194a1b2-0000-7000-8000-0000000000e1", USER_ID, "user", 0.0),
                    settings.api.session_ttl_s)
    deps.setdefault("sessions", sessions)
    app = create_app(
        ApiDeps(
            settings=settings,
            publisher=publisher or InMemoryEventPublisher(broker),
            receipts=receipts,
            password_hasher=FAST_HASHER,
            **deps,
        )
    )
    reader = InMemoryEventConsumer(broker, "api-tests-reader", ALL_TOPICS)
    with TestClient(app) as client:
        client.headers.update(OWNER_AUTH)
        yield Harness(broker, receipts, client, settings, reader, accounts)
    reader.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield from make_harness()


Decide = Callable[[Envelope[Any], Sink], tuple[ReceiptStatus, str | None] | None]


@dataclass
class FakeSinks:
    """Stands in for the S2 workers: consumes the broker in its own group and writes one
    receipt per concerned store, as `decide` says (None = that store stays silent)."""

    broker: InMemoryBroker
    receipts: InMemoryReceiptLog
    decide: Decide
    delay_s: float = 0.05
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeSinks:
        consumer = InMemoryEventConsumer(self.broker, "fake-sinks", ALL_TOPICS)

        def run() -> None:
            while not self._stop.is_set():
                for record in consumer.poll_batch(100, 0.02):
                    event = decode(record.value or b"")
                    # Receipts come some time after the publish, as with real sinks.
                    self._stop.wait(self.delay_s)
                    receipts = []
                    for sink in EVENT_TYPES[event.type].consumers:
                        if sink is Sink.AUDIT:
                            continue
                        decision = self.decide(event, sink)
                        if decision is not None:
                            receipts.append(Receipt(
                                event_id=event.event_id, event_type=event.type, sink=sink,
                                status=decision[0], reason=decision[1],
                                processed_at=datetime.now(UTC),
                            ))
                    self.receipts.record(receipts)
            consumer.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)


def store_everything(_event: Envelope[Any], _sink: Sink) -> tuple[ReceiptStatus, str | None]:
    return ReceiptStatus.STORED, None


def open_session(deps: ApiDeps, user_id: str, role: str = "user") -> dict[str, str]:
    """A login session put straight into the deps' session store (Redis on the real stack),
    for tests about something else than logging in; its Authorization header."""
    token = new_token()
    deps.sessions.create(token_digest(token),
                         LoginSession(str(uuid.uuid4()), user_id, role, 0.0),
                         deps.settings.api.session_ttl_s)
    return {"Authorization": f"Bearer {token}"}
