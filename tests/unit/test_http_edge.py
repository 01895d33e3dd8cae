"""The HTTP edge: refusals and command results become answers in exactly one place each."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from polystream.api.command_http import answer
from polystream.api.commands import CommandResult
from polystream.api.errors import refusal_response, status_of
from polystream.api.events.schemas import CommandAccepted, EventStatus
from polystream.api.refusals import (
    Busy,
    Conflict,
    FieldProblem,
    Forbidden,
    Invalid,
    InvalidCursor,
    Missing,
    Refusal,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unsupported,
    UpstreamRefused,
)

PROBLEM = FieldProblem(field="body.stars", message="too many", type="less_than_equal")


@pytest.mark.parametrize(("refusal", "status"), [
    (Invalid("bad", [PROBLEM]), 422),
    (Conflict("stop a stream first"), 409),
    (InvalidCursor("invalid cursor"), 400),
    (TooLarge("too big"), 413),
    (Unsupported("not an image"), 415),
    (Missing("not found"), 404),
    (Unauthenticated("log in"), 401),
    (Forbidden("operators only"), 403),
    (TooMany("slow down", retry_after_s=30), 429),
    (Busy("store down", retry_after_s=5), 503),
    (UpstreamRefused("index refused"), 502),
])
def test_each_kind_of_refusal_has_one_status(refusal: Refusal, status: int) -> None:
    response = refusal_response(refusal)
    assert status_of(refusal) == status
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["detail"] == refusal.detail
    assert body["errors"] == [p.model_dump() for p in refusal.problems]


def test_busy_and_too_many_say_when_to_retry() -> None:
    assert refusal_response(Busy("down", retry_after_s=5)).headers["Retry-After"] == "5"
    assert refusal_response(TooMany("slow", retry_after_s=42)).headers["Retry-After"] == "42"
    assert "Retry-After" not in refusal_response(Missing("gone")).headers


def test_unauthenticated_carries_the_bearer_challenge() -> None:
    plain = refusal_response(Unauthenticated("log in")).headers["WWW-Authenticate"]
    assert plain == 'Bearer realm="polystream"'
    expired = refusal_response(
        Unauthenticated("expired", "invalid_token", realm="polystream-operator"))
    assert expired.headers["WWW-Authenticate"] == (
        'Bearer realm="polystream-operator", error="invalid_token"')


def _result(state: str | None, creates: bool = False) -> CommandResult:
    event_id = uuid4()
    accepted = CommandAccepted(event_id=event_id, type="rating.submitted",
                               status_url=f"/events/{event_id}")
    status = None if state is None else EventStatus.model_validate(
        {"event_id": event_id, "type": "rating.submitted", "status": state, "sinks": {}})
    return CommandResult(accepted, creates, 0.0 if status is None else 3.0, status)


@pytest.mark.parametrize(("state", "creates", "code"), [
    (None, False, 202),
    ("pending", False, 202),
    ("stored", False, 200),
    ("stored", True, 201),
    ("rejected", False, 409),
    ("stale", False, 409),
    ("dead_lettered", True, 422),
])
def test_a_command_result_gets_its_answer(state: str | None, creates: bool, code: int) -> None:
    result = _result(state, creates)
    response = answer(result)
    body = json.loads(bytes(response.body))
    assert response.status_code == code
    assert response.headers["Location"] == f"/events/{result.accepted.event_id}"
    assert body["event_id"] == str(result.accepted.event_id)
    assert "resource_id" not in body  # absent rather than null
    if state is None:
        assert "Preference-Applied" not in response.headers
        assert "status" not in body
    else:
        assert response.headers["Preference-Applied"] == "wait=3"
        assert body["status"] == state
