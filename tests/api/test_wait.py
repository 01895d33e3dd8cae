"""Read-your-writes: `?wait` / `Prefer: wait` and GET /events/{id}, with the sinks simulated by
a thread that consumes the in-memory broker and writes receipts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from polystream.domain.events import Envelope, Receipt, ReceiptStatus, Sink
from polystream.receipts import InMemoryReceiptLog

from .cases import REGISTER, START_SUBSCRIPTION, VALID
from .conftest import (
    OPERATOR,
    OTHER_EMAIL,
    FakeSinks,
    Harness,
    login,
    make_harness,
    make_settings,
    store_everything,
)

START = START_SUBSCRIPTION.json


def one_active_subscription() -> Any:
    seen: set[str] = set()

    def decide(event: Envelope[Any], sink: Sink) -> tuple[ReceiptStatus, str | None]:
        if event.type == "subscription.started" and sink is Sink.POSTGRES:
            if event.payload.user_id in seen:
                return ReceiptStatus.REJECTED, "user already has an active subscription"
            seen.add(event.payload.user_id)
        return ReceiptStatus.STORED, None

    return decide


def test_creation_with_wait_answers_201_once_stored(harness: Harness) -> None:
    with FakeSinks(harness.broker, harness.receipts, store_everything):
        response = harness.client.post("/subscriptions?wait=2", json=START)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "stored"
    assert body["sinks"]["postgres"]["status"] == "stored"
    assert body["sinks"]["postgres"]["processed_at"]
    assert "audit" not in body["sinks"]  # the audit is not waited for
    assert body["resource_id"]
    assert response.headers["location"] == f"/events/{body['event_id']}"
    assert response.headers["preference-applied"] == "wait=2"


def test_a_rejection_answers_409_with_the_reason(harness: Harness) -> None:
    with FakeSinks(harness.broker, harness.receipts, one_active_subscription()):
        first = harness.client.post("/subscriptions?wait=2", json=START)
        started = time.monotonic()
        second = harness.client.post("/subscriptions?wait=2", json=START)
        took = time.monotonic() - started
    assert first.status_code == 201
    assert second.status_code == 409, second.text
    body = second.json()
    assert body["status"] == "rejected"
    assert "active subscription" in body["detail"]
    assert body["sinks"]["postgres"] == {
        "status": "rejected", "reason": "user already has an active subscription",
        "processed_at": body["sinks"]["postgres"]["processed_at"]}
    assert took < 1.0


def test_registration_ignores_wait_and_never_tells_a_taken_email(harness: Harness) -> None:
    def taken(event: Envelope[Any], _sink: Sink) -> tuple[ReceiptStatus, str | None]:
        return ReceiptStatus.REJECTED, "email already registered"

    with FakeSinks(harness.broker, harness.receipts, store_everything):
        free = harness.client.post("/users?wait=2", json=REGISTER.json)
    with FakeSinks(harness.broker, harness.receipts, taken):
        used = harness.client.post("/users?wait=2", json=REGISTER.json)
    assert free.status_code == used.status_code == 202
    assert free.json() == used.json() and "already" not in used.text
    assert "location" not in used.headers


def test_prefer_header_waits_too(harness: Harness) -> None:
    with FakeSinks(harness.broker, harness.receipts, store_everything):
        response = harness.client.post("/subscriptions", json=START,
                                       headers={"Prefer": "respond-async, wait=2"})
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=2"


def test_non_creation_answers_200_with_every_store(harness: Harness) -> None:
    with FakeSinks(harness.broker, harness.receipts, store_everything):
        response = VALID["rate"].call.send(harness.client, Prefer="wait=2")
    assert response.status_code == 200, response.text
    assert set(response.json()["sinks"]) == {"postgres", "redis"}


@pytest.mark.parametrize("name", ["start-subscription", "record-payment", "playback-start",
                                  "upload-asset"])
def test_other_creations_answer_201(harness: Harness, name: str) -> None:
    with FakeSinks(harness.broker, harness.receipts, store_everything):
        response = VALID[name].call.send(harness.client, Prefer="wait=2")
    assert response.status_code == 201, response.text


def test_duplicate_counts_as_stored(harness: Harness) -> None:
    def decide(_event: Envelope[Any], sink: Sink) -> tuple[ReceiptStatus, str | None]:
        return (ReceiptStatus.DUPLICATE if sink is Sink.REDIS else ReceiptStatus.STORED), None

    with FakeSinks(harness.broker, harness.receipts, decide):
        response = VALID["rate"].call.send(harness.client, Prefer="wait=2")
    assert response.status_code == 200
    assert response.json()["sinks"]["redis"]["status"] == "duplicate"


def test_dead_lettered_answers_422(harness: Harness) -> None:
    def decide(_event: Envelope[Any], _sink: Sink) -> tuple[ReceiptStatus, str | None]:
        return ReceiptStatus.DEAD_LETTERED, "violates a constraint"

    with FakeSinks(harness.broker, harness.receipts, decide):
        response = harness.client.post("/subscriptions?wait=2", json=START)
    assert response.status_code == 422
    assert response.json()["status"] == "dead_lettered"
    assert "violates a constraint" in response.json()["detail"]


def test_stale_catalog_version_answers_409(harness: Harness) -> None:
    def decide(_event: Envelope[Any], sink: Sink) -> tuple[ReceiptStatus, str | None]:
        if sink is Sink.MONGO:
            return ReceiptStatus.STALE, "version 3 is older than the stored version 5"
        return ReceiptStatus.STORED, None

    with FakeSinks(harness.broker, harness.receipts, decide):
        response = VALID["upsert-series"].call.send(harness.client, Prefer="wait=2")
    assert response.status_code == 409
    assert response.json()["status"] == "stale"
    assert "older than the stored version" in response.json()["detail"]


def test_a_rejection_answers_without_waiting_for_the_other_stores(harness: Harness) -> None:
    def decide(_event: Envelope[Any], sink: Sink) -> tuple[ReceiptStatus, str | None] | None:
        if sink is Sink.POSTGRES:
            return ReceiptStatus.REJECTED, "subscription is canceled"
        return None  # redis never answers

    with FakeSinks(harness.broker, harness.receipts, decide):
        started = time.monotonic()
        response = VALID["cancel-subscription"].call.send(harness.client, Prefer="wait=2")
        took = time.monotonic() - started
    assert response.status_code == 409
    assert response.json()["sinks"]["redis"] == {"status": "pending", "reason": None,
                                                 "processed_at": None}
    assert took < 1.5


def test_wait_times_out_with_202_and_the_stores_still_pending(harness: Harness) -> None:
    def decide(_event: Envelope[Any], sink: Sink) -> tuple[ReceiptStatus, str | None] | None:
        return (ReceiptStatus.STORED, None) if sink is Sink.POSTGRES else None

    with FakeSinks(harness.broker, harness.receipts, decide):
        started = time.monotonic()
        response = VALID["rate"].call.send(harness.client, Prefer="wait=0.4")
        took = time.monotonic() - started
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["sinks"]["postgres"]["status"] == "stored"
    assert body["sinks"]["redis"]["status"] == "pending"
    assert 0.4 <= took < 2.0


def test_wait_is_capped_by_the_settings() -> None:
    for harness in make_harness(make_settings(wait_max_s=0.3)):
        started = time.monotonic()
        response = harness.client.post("/subscriptions?wait=60", json=START)
        took = time.monotonic() - started
        assert response.status_code == 202
        assert response.headers["preference-applied"] == "wait=0.3"
        assert took < 2.0


def test_without_wait_the_answer_does_not_wait(harness: Harness) -> None:
    response = harness.client.post("/subscriptions", json=START,
                                   headers={"Prefer": "wait=junk"})
    assert response.status_code == 202
    assert set(response.json()) == {"event_id", "type", "status_url", "resource_id"}
    assert "preference-applied" not in response.headers


class BrokenReceipts(InMemoryReceiptLog):
    def get(self, event_id: uuid.UUID) -> list[Receipt]:
        raise ConnectionError("redis is down")

    def owner_of(self, event_id: uuid.UUID) -> str | None:
        raise ConnectionError("redis is down")


def test_receipt_store_down_while_waiting_still_answers_202() -> None:
    for harness in make_harness(receipts=BrokenReceipts()):
        response = harness.client.post("/subscriptions?wait=1", json=START)
        assert response.status_code == 202
        assert "unavailable" in response.json()["detail"]
        assert harness.total_records() == 1


def test_event_status_follows_the_receipts(harness: Harness) -> None:
    accepted = VALID["rate"].call.send(harness.client).json()
    event_id = uuid.UUID(accepted["event_id"])

    unknown = harness.client.get(f"/events/{event_id}").json()
    assert unknown["status"] == "unknown" and unknown["type"] is None and unknown["sinks"] == {}

    pending = harness.client.get(accepted["status_url"]).json()
    assert pending["status"] == "pending"
    assert pending["type"] == "rating.submitted"
    assert pending["sinks"] == {
        "postgres": {"status": "pending", "reason": None, "processed_at": None},
        "redis": {"status": "pending", "reason": None, "processed_at": None},
    }

    def receipt(sink: Sink) -> Receipt:
        return Receipt(event_id=event_id, event_type="rating.submitted", sink=sink,
                       status=ReceiptStatus.STORED, processed_at=datetime.now(UTC))

    harness.receipts.record([receipt(Sink.POSTGRES)])
    # The receipt tells the type: no hint needed any more.
    partial = harness.client.get(f"/events/{event_id}").json()
    assert partial["status"] == "pending"
    assert partial["sinks"]["postgres"]["status"] == "stored"
    assert partial["sinks"]["redis"]["status"] == "pending"

    harness.receipts.record([receipt(Sink.REDIS), receipt(Sink.AUDIT)])
    done = harness.client.get(f"/events/{event_id}")
    assert done.status_code == 200
    assert done.json()["status"] == "stored"
    assert done.headers["cache-control"] == "no-store"


def test_only_the_sender_and_operators_read_an_events_status(harness: Harness) -> None:
    accepted = VALID["rate"].call.send(harness.client).json()
    url = accepted["status_url"]
    assert harness.client.get(url).status_code == 200
    other = login(harness.client, OTHER_EMAIL)
    foreign = harness.client.get(url, headers=other)
    unknown = harness.client.get(f"/events/{uuid.uuid4()}")
    # A foreign id and an unknown one answer alike: ids cannot be probed.
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
    assert harness.client.get(url, headers=OPERATOR).status_code == 200
    anonymous = harness.client.get(url, headers={"Authorization": ""})
    assert anonymous.status_code == 401


def test_event_status_refuses_bad_ids_and_unknown_types(harness: Harness) -> None:
    bad_id = harness.client.get("/events/not-a-uuid")
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["field"] == "path.event_id"
    bad_type = harness.client.get(f"/events/{uuid.uuid4()}?type=user.exploded")
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["field"] == "query.type"


def test_event_status_with_the_receipt_store_down_answers_503() -> None:
    for harness in make_harness(receipts=BrokenReceipts()):
        response = harness.client.get(f"/events/{uuid.uuid4()}")
        assert response.status_code == 503
