"""Regression tests for the holes a hostile client found (issue 12): instants at the calendar's
edges, card numbers in disguise, control characters in free text, unbounded integers. Each
answers 422 with the documented error shape and publishes nothing; none is a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polystream.domain.events import (
    MAX_VERSION,
    contains_card_data,
    looks_like_card_number,
)
from polystream.domain.examples import TITLE_ID, USER_ID

from .cases import CANCEL, FLAG, PROFILE, RATE, REGISTER, START_SUBSCRIPTION, UPSERT_MOVIE, Call
from .conftest import OPERATOR, Harness


def send(harness: Harness, call: Call) -> Any:
    if call.json is None:
        return call.send(harness.client)
    # ASCII-escaped JSON, as a client may send it: "\ud800" (a lone surrogate) included.
    raw = Call(call.method, call.url, headers={**call.headers,
               "content-type": "application/json"}, content=json.dumps(call.json).encode())
    return raw.send(harness.client)


def refused(harness: Harness, call: Call, field: str, status: int = 422) -> dict[str, Any]:
    before = harness.total_records()
    response = send(harness, call)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "errors"}
    assert field in {error["field"] for error in body["errors"]}, body
    assert harness.total_records() == before
    return body


# --- instants ------------------------------------------------------------------------------

EDGE_INSTANTS = [
    "9999-12-31T23:59:59Z",
    "9999-12-15T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:00:00-05:00",  # 2200-01-01T04:00Z
]


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_period_start_at_the_calendars_edges_is_a_422(harness: Harness, instant: str) -> None:
    # December 9999 with no end: "one month later" used to overflow (500).
    body = refused(harness, START_SUBSCRIPTION.with_json(period_start=instant),
                   "body.period_start")
    assert any("1970" in error["message"] for error in body["errors"])


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
@pytest.mark.parametrize("field", ["period_end"])
def test_every_instant_field_is_bounded(harness: Harness, instant: str, field: str) -> None:
    call = START_SUBSCRIPTION.with_json(period_start="2030-01-01T00:00:00Z", **{field: instant})
    refused(harness, call, f"body.{field}")


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_cancel_ends_at_is_bounded(harness: Harness, instant: str) -> None:
    refused(harness, CANCEL.with_json(ends_at=instant), "body.ends_at")


def test_instants_inside_the_range_are_accepted(harness: Harness) -> None:
    call = START_SUBSCRIPTION.with_json(period_start="2199-11-30T00:00:00+14:00")
    assert call.send(harness.client).status_code == 202
    call = CANCEL.with_json(ends_at="1970-01-01T00:00:00Z")
    assert call.send(harness.client).status_code == 202


def test_period_start_late_in_2199_without_end_is_a_422_not_a_500(harness: Harness) -> None:
    # The default end (one month later) falls in 2200: refused, and said so.
    refused(harness, START_SUBSCRIPTION.with_json(period_start="2199-12-20T00:00:00Z"),
            "body.period_end")


# --- card numbers in disguise ----------------------------------------------------------------

DISGUISED_CARDS = [
    "4111.1111.1111.1111",
    "4111/1111/1111/1111",
    "4111_1111_1111_1111",
    "4111\t1111\t1111\t1111",
    "4111\u00a01111\u00a01111\u00a01111",  # NBSP
    "4111\u200b1111\u200b1111\u200b1111",  # zero-width space
    "4111\u20601111\u20601111\u20601111",  # word joiner
    "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
    "4111 - 1111 - 1111 - 1111",
    "4111\u20131111\u20131111\u20131111",  # en dash
    "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",
    "4111\u00ad1111\u00ad1111\u00ad1111",  # soft hyphen
    "4111,1111,1111,1111",
    "5555:5555:5555:4444",
]


@pytest.mark.parametrize("card", DISGUISED_CARDS)
def test_disguised_card_numbers_are_card_numbers(card: str) -> None:
    assert looks_like_card_number(card)
    assert contains_card_data({"note": f"my card: {card} thanks"})


@pytest.mark.parametrize("card", DISGUISED_CARDS)
def test_disguised_card_numbers_are_refused_by_the_api(harness: Harness, card: str) -> None:
    response = RATE.with_json(review=f"card {card} ok").send(harness.client)
    assert response.status_code == 422
    assert card not in response.text
    before = harness.total_records()
    response = PROFILE.with_json(display_name=card).send(harness.client)
    assert response.status_code == 422
    assert harness.total_records() == before


def test_prose_with_numbers_is_not_card_data() -> None:
    assert not contains_card_data({"text": "Season 2 (2019), 10 episodes of 45 minutes."})
    assert not contains_card_data({"text": "Call 0800 123 456 before 2025-01-15."})


# --- control characters ----------------------------------------------------------------------

CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"]


@pytest.mark.parametrize("char", CONTROLS)
def test_control_characters_in_free_text_are_refused(harness: Harness, char: str) -> None:
    refused(harness, RATE.with_json(review=f"nice{char}film"), "body.review")
    refused(harness, PROFILE.with_json(display_name=f"Ana{char}"), "body.display_name")
    refused(harness, UPSERT_MOVIE.with_json(title=f"Quiet{char}Harbour"), "body.title")
    refused(harness, FLAG.with_json(value=f"on{char}"), "body.value")


def test_nul_is_refused_at_the_api_so_the_stores_cannot_disagree(harness: Harness) -> None:
    refused(harness, REGISTER.with_json(display_name="Ana\x00"), "body.display_name")


def test_line_breaks_are_fine_in_reviews_but_not_in_names(harness: Harness) -> None:
    assert RATE.with_json(review="Good.\r\n\tReally.").send(harness.client).status_code == 202
    refused(harness, PROFILE.with_json(display_name="Ana\nS."), "body.display_name")


# --- integers --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [MAX_VERSION + 1, 10**400, -1, 0])
def test_title_version_is_bounded(harness: Harness, version: int) -> None:
    refused(harness, UPSERT_MOVIE.with_json(version=version), "body.version")


def test_the_largest_version_is_accepted(harness: Harness) -> None:
    assert UPSERT_MOVIE.with_json(version=MAX_VERSION).send(harness.client).status_code == 202


@pytest.mark.parametrize("query", ["version=" + "9" * 400, f"version={MAX_VERSION + 1}"])
def test_removal_version_is_bounded(harness: Harness, query: str) -> None:
    call = Call("DELETE", f"/catalog/titles/{TITLE_ID}?{query}", headers=OPERATOR)
    refused(harness, call, "query.version")


def test_flag_integers_are_bounded(harness: Harness) -> None:
    refused(harness, FLAG.with_json(value=10**400), "body.value")


def test_huge_integers_elsewhere_are_422(harness: Harness) -> None:
    refused(harness, RATE.with_json(stars=10**400), "body.stars")
    refused(harness, REGISTER.with_json(birth_year=-(10**400)), "body.birth_year")
    assert USER_ID
