"""Every command through the HTTP API onto the in-memory broker, and every way to refuse one."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from concurrent.futures import Future
from typing import Any

import pytest
from argon2 import PasswordHasher

from polystream.api.users.schemas import REGISTRATION_DETAIL
from polystream.bus.memory import InMemoryEventPublisher
from polystream.bus.ports import Delivered, PublishError
from polystream.bus.topology import Topic, topic_of
from polystream.domain.events import EVENT_TYPES, MAX_ASSET_BYTES
from polystream.domain.examples import TITLE_ID, USER_ID

from .cases import (
    BAD,
    CARD,
    CARD_BAD,
    CARD_DETAIL,
    OPERATOR_CALLS,
    PASSWORD,
    REGISTER,
    UPLOAD,
    UPSERT_SERIES,
    VALID,
    Call,
    jpeg_image,
    webp_image,
)
from .conftest import (
    OPERATOR,
    OWNER_AUTH,
    Harness,
    add_account,
    login,
    make_harness,
    make_settings,
    new_broker,
)


@pytest.mark.parametrize("name", VALID)
def test_each_command_publishes_exactly_one_event(harness: Harness, name: str) -> None:
    case = VALID[name]
    response = case.call.send(harness.client)

    assert response.status_code == 202, response.text
    body = response.json()
    events = harness.new_events()
    assert len(events) == 1
    record, event = events[0]
    spec = EVENT_TYPES[case.event_type]
    if case.event_type == "user.registered":
        # The one command that says nothing about its event (no account enumeration).
        assert body == {"status": "accepted", "detail": REGISTRATION_DETAIL}
        assert event.type == case.event_type and record.topic == topic_of(spec.type).value
        return
    assert event.type == case.event_type == body["type"]
    assert str(event.event_id) == body["event_id"]
    assert record.topic == topic_of(spec.type).value
    key = case.key if case.key is not None else body["resource_id"]
    assert event.key == key and record.key == key.encode()
    assert event.source == "api"
    assert response.headers["location"] == f"/events/{event.event_id}"
    assert body["status_url"] == f"/events/{event.event_id}?type={case.event_type}"
    payload = event.payload.model_dump(mode="json")
    for field, value in case.expect.items():
        assert payload[field] == value, field
    if case.creates:
        # The id of what was created comes back, and it is the one in the event.
        assert body["resource_id"] in json.dumps(payload)
    else:
        assert "resource_id" not in body


def test_register_publishes_only_an_argon2id_hash(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = REGISTER.send(harness.client)
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"

    [(record, event)] = harness.new_events()
    assert PASSWORD.encode() not in (record.value or b"")
    assert PASSWORD not in response.text
    assert PASSWORD not in server_log(caplog)
    password_hash = event.payload.password_hash
    assert password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(password_hash, PASSWORD)
    # The hash itself is a secret too: not in the response, not in the logs.
    assert password_hash not in response.text
    assert password_hash not in server_log(caplog)
    # No id and no event to follow: nothing that could tell a taken email from a free one.
    assert event.payload.user_id not in response.text
    assert str(event.event_id) not in response.text and "location" not in response.headers


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    # The test client's own logger (httpx) prints the URLs it sends; only ours count.
    return "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if r.name.startswith("polystream")
    )


def test_two_registrations_get_distinct_users_and_the_same_answer(harness: Harness) -> None:
    first = REGISTER.send(harness.client)
    second = REGISTER.send(harness.client)
    assert (first.status_code, first.json()) == (second.status_code, second.json())
    [(_, one), (_, two)] = harness.new_events()
    assert one.payload.user_id != two.payload.user_id


def test_subscription_period_defaults_to_one_calendar_month(harness: Harness) -> None:
    call = VALID["start-subscription"].call.with_json(period_start="2025-01-31T10:00:00+01:00")
    assert call.send(harness.client).status_code == 202
    [(_, event)] = harness.new_events()
    assert event.payload.period_start.isoformat() == "2025-01-31T09:00:00+00:00"
    assert event.payload.period_end.isoformat() == "2025-02-28T09:00:00+00:00"


def test_profile_update_carries_only_the_fields_sent(harness: Harness) -> None:
    call = Call("PATCH", f"/users/{USER_ID}", {"email": "New@Example.com"})
    assert call.send(harness.client).status_code == 202
    [(_, event)] = harness.new_events()
    assert event.payload.email == "new@example.com"
    assert event.payload.display_name is None and event.payload.country is None


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(jpeg_image(), "image/jpeg"), (webp_image(), "image/webp"),
     (jpeg_image(), "application/octet-stream")],
    ids=["jpeg", "webp", "type-from-signature"],
)
def test_upload_accepts_jpeg_and_webp(harness: Harness, data: bytes, content_type: str) -> None:
    call = Call("POST", UPLOAD.url, files={"file": ("img", data, content_type)},
                data={"kind": "backdrop"}, headers=OPERATOR)
    response = call.send(harness.client)
    assert response.status_code == 202, response.text
    [(_, event)] = harness.new_events()
    payload = event.payload
    assert payload.content_type.value == (
        "image/webp" if data.startswith(b"RIFF") else "image/jpeg")
    assert payload.size_bytes == len(data)
    assert payload.sha256 == hashlib.sha256(data).hexdigest()
    assert base64.b64decode(payload.data_base64) == data
    assert payload.asset_id == response.json()["resource_id"]


def test_upload_accepts_an_image_of_exactly_the_limit(harness: Harness) -> None:
    data = jpeg_image(size=MAX_ASSET_BYTES)
    assert len(data) == MAX_ASSET_BYTES
    call = Call("POST", UPLOAD.url, files={"file": ("big.jpg", data, "image/jpeg")},
                data={"kind": "poster"}, headers=OPERATOR)
    assert call.send(harness.client).status_code == 202
    [(_, event)] = harness.new_events()
    assert event.payload.size_bytes == MAX_ASSET_BYTES


def test_a_large_title_snapshot_is_accepted(harness: Harness) -> None:
    # Larger than the 64 KiB JSON limit: a long series needs the title limit.
    episodes = [
        {"episode_id": f"e{n}", "number": n, "title": f"Episode {n}", "runtime_minutes": 45,
         "synopsis": "S" * 400}
        for n in range(1, 301)
    ]
    call = UPSERT_SERIES.with_json(seasons=[{"number": 1, "episodes": episodes}])
    assert len(json.dumps(call.json)) > 100 * 1024
    assert call.send(harness.client).status_code == 202
    assert len(harness.new_records()) == 1


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_refused_with_field_errors_and_nothing_published(
    harness: Harness, name: str
) -> None:
    case = BAD[name]
    before = harness.total_records()
    response = case.call.send(harness.client)

    assert response.status_code == case.status, response.text
    body = response.json()
    assert body["detail"]
    assert body["errors"], body
    if case.field is not None:
        assert case.field in [error["field"] for error in body["errors"]], body
    for error in body["errors"]:
        assert set(error) == {"field", "message", "type"}
    assert harness.total_records() == before


def test_refusals_never_echo_the_password(harness: Harness) -> None:
    secret = "tiny-secret"
    for password in (secret, [secret], {"p": secret}):
        response = REGISTER.with_json(password=password).send(harness.client)
        assert response.status_code == 422
        assert secret not in response.text


@pytest.mark.parametrize("name", CARD_BAD)
def test_card_data_is_refused_anywhere_and_never_echoed_or_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    call, field = CARD_BAD[name]
    before = harness.total_records()
    response = call.send(harness.client)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"] == CARD_DETAIL
    assert field in [error["field"] for error in body["errors"]], body
    digits = CARD.replace(" ", "")
    for text in (response.text, server_log(caplog)):
        assert digits not in text.replace(" ", "").replace("-", "")
    assert harness.total_records() == before


def test_tokens_brands_and_last4_are_not_card_data(harness: Harness) -> None:
    response = VALID["record-payment"].call.send(harness.client)
    assert response.status_code == 202


@pytest.mark.parametrize("name", OPERATOR_CALLS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {OPERATOR['Authorization'].split()[1]}",
     f"Bearer {OPERATOR['Authorization'].split()[1]}x"],
    ids=["missing", "wrong", "not-bearer", "longer"],
)
def test_operator_endpoints_need_the_operator_token(
    harness: Harness, name: str, authorization: str | None
) -> None:
    call = OPERATOR_CALLS[name]
    headers = {k: v for k, v in call.headers.items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    unauthenticated = Call(call.method, call.url, call.json, call.files, call.data, headers)
    before = harness.total_records()

    # Without the owner's token, which the harness sends by default.
    harness.client.headers.pop("Authorization")
    response = unauthenticated.send(harness.client)

    assert response.status_code == 401, response.text
    assert "token" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert harness.total_records() == before


@pytest.mark.parametrize("name", OPERATOR_CALLS)
def test_no_configured_operator_token_refuses_everyone_but_operator_accounts(name: str) -> None:
    for harness in make_harness(make_settings(operator_token="")):
        call = OPERATOR_CALLS[name]
        harness.client.headers.pop("Authorization")
        for headers in ({}, {"Authorization": "Bearer "}, OPERATOR, OWNER_AUTH):
            response = Call(call.method, call.url, call.json, call.files, call.data,
                            headers).send(harness.client)
            assert response.status_code == (403 if headers is OWNER_AUTH else 401)
        assert harness.total_records() == 0
        add_account(harness.accounts, "0194a1b2-0000-7000-8000-0000000000f9", "op@example.com",
                    role="operator")
        operator = login(harness.client, "op@example.com")
        harness.new_records()  # the login event
        response = Call(call.method, call.url, call.json, call.files, call.data,
                        operator).send(harness.client)
        assert response.status_code == 202, response.text
        assert harness.total_records() == 2


def test_user_endpoints_need_no_operator_token(harness: Harness) -> None:
    assert REGISTER.send(harness.client, Authorization="Bearer whatever").status_code == 202


def test_publish_failure_answers_503_and_nothing_is_accepted() -> None:
    broker = new_broker()
    for harness in make_harness(broker=broker):
        broker.fail_next_publishes(1, "broker unavailable")
        response = VALID["rate"].call.send(harness.client)
        assert response.status_code == 503
        assert "not accepted" in response.json()["detail"]
        assert "event_id" not in response.json()
        assert response.headers["retry-after"] == "1"
        assert harness.total_records() == 0
        # The next command goes through: the failure was that one publish only.
        assert VALID["rate"].call.send(harness.client).status_code == 202
        assert harness.total_records() == 1


class RefusingPublisher(InMemoryEventPublisher):
    """Refuses at once, as Kafka's does when its local queue is full or it is closed."""

    def publish(self, topic: str, key: str, value: bytes,
                headers: Any = None) -> Future[Delivered]:
        raise PublishError("publish refused: local queue full")


class SilentPublisher(InMemoryEventPublisher):
    """Never acknowledges (a broker that hangs)."""

    def publish(self, topic: str, key: str, value: bytes,
                headers: Any = None) -> Future[Delivered]:
        return Future()


def test_publish_refused_at_once_answers_503() -> None:
    broker = new_broker()
    for harness in make_harness(publisher=RefusingPublisher(broker), broker=broker):
        response = REGISTER.send(harness.client)
        assert response.status_code == 503
        assert "not accepted" in response.json()["detail"]


def test_publish_timeout_answers_503() -> None:
    broker = new_broker()
    settings = make_settings(publish_timeout_s=0.2)
    for harness in make_harness(settings, publisher=SilentPublisher(broker), broker=broker):
        response = VALID["set-flag"].call.send(harness.client)
        assert response.status_code == 503
        assert "within 0.2s" in response.json()["detail"]


def test_declared_content_length_over_the_limit_is_refused_before_reading(
    harness: Harness,
) -> None:
    response = harness.client.post(
        "/users", content=b"{}", headers={"content-type": "application/json",
                                          "content-length": str(10**9)})
    assert response.status_code == 413
    assert harness.total_records() == 0


def test_access_log_names_routes_not_paths(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="polystream.api.access")
    VALID["rate"].call.send(harness.client)
    lines = [r.getMessage() for r in caplog.records if r.name == "polystream.api.access"]
    assert lines == [lines[0]]
    assert lines[0].startswith("PUT /titles/{title_id}/ratings/{user_id} 202 ")
    assert TITLE_ID not in server_log(caplog)


def test_topics_used_are_the_contract_topics(harness: Harness) -> None:
    for case in VALID.values():
        case.call.send(harness.client)
    topics = {record.topic for record in harness.new_records()}
    assert topics <= {t.value for t in Topic}
    assert Topic.DEADLETTER.value not in topics and Topic.RECEIPTS.value not in topics
