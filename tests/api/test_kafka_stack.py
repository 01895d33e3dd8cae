"""The write API on the real stack: Kafka for events, Redis for receipts.

Events are read back with a raw confluent-kafka consumer (not our bus code) and checked
against the exported JSON Schemas. Other tests may publish to the same topics concurrently, so
every request carries its own W3C trace id and the checks look at the records carrying it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from pydantic import SecretStr

from polystream.api import ApiDeps, create_app
from polystream.bootstrap_api import build_deps
from polystream.bus.admin import end_offsets, ensure_topics
from polystream.bus.ports import Record
from polystream.bus.topology import Topic, topic_of, topic_specs
from polystream.domain.events import EVENT_TYPES, Receipt, ReceiptStatus, Sink
from polystream.domain.examples import USER_ID
from polystream.settings import Settings
from polystream.shred import open_records
from polystream.sinks.postgres.migrate import upgrade

from .cases import BAD, CARD_BAD, OPERATOR_CALLS, REGISTER, VALID, Call
from .conftest import OPERATOR_TOKEN, open_session

pytestmark = pytest.mark.stack

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EVENT_TOPICS = sorted({topic_of(t).value for t in EVENT_TYPES})
Offsets = dict[tuple[str, int], int]


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[tuple[TestClient, ApiDeps]]:
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    upgrade(settings.postgres)  # as a worker does at start: /readyz reads the users table
    api = settings.api.model_copy(update={"operator_token": SecretStr(OPERATOR_TOKEN)})
    deps = build_deps(settings.model_copy(update={"api": api}))
    with TestClient(create_app(deps)) as client:
        client.headers.update(open_session(deps, USER_ID))
        yield client, deps


def traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return trace_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


def offsets(settings: Settings, topics: list[str] = EVENT_TOPICS) -> Offsets:
    return {(topic, p): o for topic in topics
            for p, o in end_offsets(settings.kafka, topic).items()}


def read_range(settings: Settings, start: Offsets, end: Offsets) -> list[dict[str, Any]]:
    """Every record between two sets of offsets: ``raw`` its value as on the topic,
    ``value`` its JSON with the sealed personal fields opened (as consumers see it; the
    ``record`` too)."""
    wanted = {tp: o for tp, o in end.items() if o > start.get(tp, 0)}
    if not wanted:
        return []
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"api-test-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(t, p, start.get((t, p), 0)) for (t, p) in wanted])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while wanted and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 1.0):
                if msg.error() is not None:
                    continue
                # A message without error has its place; our producers send bytes headers.
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                assert topic is not None and partition is not None and offset is not None
                raw_headers = dict(msg.headers() or [])
                headers = {k: v for k, v in raw_headers.items() if isinstance(v, bytes)}
                assert headers == raw_headers, raw_headers
                tp = (topic, partition)
                found.append({"topic": topic, "key": msg.key(), "raw": msg.value() or b"null",
                              "record": Record(topic, partition, offset,
                                               msg.key(), msg.value(), headers)})
                if tp in wanted and offset + 1 >= wanted[tp]:
                    del wanted[tp]
    finally:
        consumer.close()
    assert not wanted, f"could not read up to the end offsets of {sorted(wanted)}"
    opened = open_records(settings, [r["raw"] for r in found], "api-test-reader")
    for record, value in zip(found, opened, strict=True):
        record["value"] = json.loads(value)
        record["record"] = replace(record["record"], value=value)
    return found


def test_ready_on_the_real_stack(stack: tuple[TestClient, ApiDeps]) -> None:
    client, _ = stack
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"publisher": "ok", "receipts": "ok", "postgres": "ok",
                                         "audit": "ok", "mongo": "ok", "redis": "ok"}


def test_valid_commands_reach_kafka(
    stack: tuple[TestClient, ApiDeps], settings: Settings
) -> None:
    client, _ = stack
    trace_id, header = traceparent()
    before = offsets(settings)
    accepted: dict[str, tuple[str, dict[str, Any]]] = {}
    registrations = 0
    for name, case in VALID.items():
        response = case.call.send(client, traceparent=header)
        assert response.status_code == 202, (name, response.text)
        if case.event_type == "user.registered":
            registrations += 1  # answered without an event id (no account enumeration)
            continue
        accepted[response.json()["event_id"]] = (name, response.json())

    records = [r for r in read_range(settings, before, offsets(settings))
               if r["value"].get("trace_id") == trace_id]

    registered = [r for r in records if r["value"]["type"] == "user.registered"]
    assert len(registered) == registrations == 1
    for record in registered:
        assert record["value"]["payload"]["password_hash"].startswith("$argon2id$")
        assert b"correct horse" not in json.dumps(record["value"]).encode()
    records = [r for r in records if r not in registered]
    assert sorted(r["value"]["event_id"] for r in records) == sorted(accepted)
    for record in records:
        value = record["value"]
        name, body = accepted[value["event_id"]]
        case = VALID[name]
        spec = EVENT_TYPES[case.event_type]
        assert value["type"] == case.event_type
        assert record["topic"] == topic_of(spec.type).value
        key = case.key or body["resource_id"]
        assert record["key"] == key.encode() and value["key"] == key
        for field, expected in case.expect.items():
            assert value["payload"][field] == expected, (name, field)
        schema = json.loads((SCHEMAS / f"{case.event_type}.json").read_text())
        Draft202012Validator(schema).validate(value)


def test_invalid_commands_never_reach_kafka(
    stack: tuple[TestClient, ApiDeps], settings: Settings
) -> None:
    client, deps = stack
    trace_id, header = traceparent()
    refusals: list[Call] = [case.call for case in BAD.values()]
    refusals += [call for call, _ in CARD_BAD.values()]
    refusals += [Call(c.method, c.url, c.json, c.files, c.data, {}) for c in
                 OPERATOR_CALLS.values()]
    refusals += [Call(c.method, c.url, c.json, c.files, c.data,
                      {"Authorization": "Bearer not-the-token"})
                 for c in OPERATOR_CALLS.values()]
    before = offsets(settings)

    for call in refusals:
        response = call.send(client, traceparent=header)
        assert 400 <= response.status_code < 500, (call, response.text)
    # A valid command with the same trace id last: proves the check below can see ours.
    control = VALID["rate"].call.send(client, traceparent=header)
    assert control.status_code == 202
    deps.publisher.flush(10)

    ours = [r for r in read_range(settings, before, offsets(settings))
            if r["value"].get("trace_id") == trace_id]
    assert [r["value"]["event_id"] for r in ours] == [control.json()["event_id"]]


def test_wait_with_redis_receipts(
    stack: tuple[TestClient, ApiDeps], settings: Settings
) -> None:
    """Registration answers the same 202 whether the email is free or taken, without
    waiting, even with `wait`; other commands do wait (the rating with a simulated
    PostgreSQL sink writing receipts into the real Redis)."""
    client, deps = stack
    trace_id, header = traceparent()
    start = offsets(settings, [Topic.USERS.value, Topic.RATINGS.value])
    stop = threading.Event()
    emails: set[str] = set()

    def fake_postgres_sink() -> None:
        consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                             "group.id": f"api-test-sink-{uuid.uuid4().hex}",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
        try:
            while not stop.is_set():
                for msg in consumer.consume(100, 0.05):
                    if msg.error() is not None:
                        continue
                    event = json.loads(msg.value() or b"null")
                    if event.get("trace_id") != trace_id:
                        continue
                    # As the real sink: the email opened (sealed, it differs every time).
                    [opened] = open_records(settings, [msg.value() or b"null"], "api-test-sink")
                    event = json.loads(opened)
                    email = event["payload"].get("email", "")
                    status, reason = ReceiptStatus.STORED, None
                    if email in emails:
                        status, reason = ReceiptStatus.REJECTED, "email already registered"
                    emails.add(email)
                    deps.receipts.record([Receipt(
                        event_id=event["event_id"], event_type=event["type"],
                        sink=Sink.POSTGRES, status=status, reason=reason,
                        processed_at=datetime.now(UTC))])
        finally:
            consumer.close()

    sink = threading.Thread(target=fake_postgres_sink, daemon=True)
    sink.start()
    try:
        call = REGISTER.with_json(email=f"ana.{uuid.uuid4().hex[:12]}@example.com")
        started = time.monotonic()
        first = client.post("/users?wait=5", json=call.json, headers={"traceparent": header})
        first_took = time.monotonic() - started
        started = time.monotonic()
        second = client.post("/users", json=call.json,
                             headers={"traceparent": header, "Prefer": "wait=5"})
        second_took = time.monotonic() - started
        rated = VALID["rate"].call.send(client, traceparent=header, Prefer="wait=5")
    finally:
        stop.set()
        sink.join(10)

    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json() == second.json()
    # `wait=5` is not honoured: each answer costs an argon2id hash (~0.3 s; more on a busy
    # machine), far from the 5 s a wait would take.
    assert first_took < 2.5 and second_took < 2.5, (first_took, second_took)
    assert rated.status_code == 202  # redis never answers in this test: pending
    assert rated.json()["sinks"]["postgres"]["status"] == "stored"
    status = client.get(rated.json()["status_url"]).json()
    assert status["sinks"]["postgres"]["status"] == "stored"
