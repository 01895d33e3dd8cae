"""The authorization matrix on the real stack: every route of the application x {anonymous,
owner, another user, an operator account, the operator token}, as `authz_matrix.ROUTES`
says. The routes come from the application itself, so a new route without a row fails."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from polystream.domain.events import PlanCode, PlaybackStarted
from polystream.domain.examples import example_event
from polystream.settings import Settings
from polystream.sinks.redis_live import RedisLiveStore

from .authz_matrix import ROUTES, Ids, Row
from .cases import VALID
from .conftest import OPERATOR
from .stack_platform import PASSWORD, Platform, bearer, running_platform

pytestmark = pytest.mark.stack

WHO = ("anonymous", "owner", "other", "operator", "operator-token")


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every API route, however the routers were included."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # an included router (FastAPI)
                for context in route.effective_route_contexts():
                    if isinstance(context.original_route, APIRoute):
                        methods = context.original_route.methods
                        assert methods is not None  # an APIRoute always has its methods
                        found.update((m, context.path) for m in methods)
            elif isinstance(route, APIRoute):
                assert route.methods is not None
                found.update((m, route.path) for m in route.methods)

    walk(app.router.routes)
    return found


@pytest.fixture(scope="module")
def platform(settings: Settings) -> Iterator[Platform]:
    yield from running_platform(settings)


@pytest.fixture(scope="module")
def world(platform: Platform, settings: Settings) -> tuple[Ids, dict[str, str], dict[str, str]]:
    owner_id, owner = platform.register("owner")
    _, other = platform.register("other")
    _, operator = platform.register("operator", role="operator")
    started = platform.client.post("/subscriptions", json={"plan": "premium"},
                                   headers=bearer(owner))
    assert started.status_code == 202, started.text
    subscription_id = started.json()["resource_id"]
    deadline = time.monotonic() + 20
    while platform.accounts.get_subscription(subscription_id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The owner's viewing session, in the live store the API reads (no Redis sink runs here).
    live = RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
    subscription = example_event("subscription.started", user_id=owner_id,
                                 subscription_id=subscription_id, plan=PlanCode.PREMIUM)
    viewing = example_event(PlaybackStarted, user_id=owner_id)
    viewing_id = viewing.payload.viewing_session_id
    viewing = example_event(PlaybackStarted, user_id=owner_id,
                            viewing_session_id=f"{viewing_id[:-4]}{owner_id[-4:]}")
    outcomes = live.apply([subscription, viewing], allow_defer=False)
    live.close()
    assert all(o.status.value in ("stored", "duplicate") for o in outcomes), outcomes
    viewing_session_id: str = viewing.payload.viewing_session_id
    tokens = {"owner": owner, "other": other, "operator": operator}
    emails = {who: platform.client.get("/me", headers=bearer(token)).json()["email"]
              for who, token in tokens.items()}
    _, login_token = platform.register("login")
    login = {"email": platform.client.get("/me", headers=bearer(login_token)).json()["email"],
             "password": PASSWORD}
    event_id = started.json()["event_id"]
    return Ids(owner_id, subscription_id, viewing_session_id, login, event_id), tokens, emails


def test_every_route_has_a_policy(platform: Platform) -> None:
    routes = app_routes(platform.client.app)  # type: ignore[arg-type]
    assert ("GET", "/audit/events") in routes  # the audit index is part of this app
    assert routes - set(ROUTES) == set(), "routes without a row in authz_matrix.ROUTES"
    assert set(ROUTES) - routes == set(), "rows for routes that do not exist"


def _headers(platform: Platform, who: str, tokens: dict[str, str], row: Row,
             emails: dict[str, str]) -> dict[str, str]:
    if who == "anonymous":
        return {}
    if who == "operator-token":
        return dict(OPERATOR)
    if row.erases_account:
        return bearer(platform.register(f"erased-{who}",
                                        role="operator" if who == "operator" else "user")[1])
    if row.ends_session:
        return bearer(platform.login(emails[who]))
    return bearer(tokens[who])


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_authorization_matrix(
    platform: Platform, world: tuple[Ids, dict[str, str], dict[str, str]],
    route: tuple[str, str],
) -> None:
    ids, tokens, emails = world
    row = ROUTES[route]
    call = row.request(ids)
    got: dict[str, int] = {}
    for who in WHO:
        response = call.send(platform.client, **_headers(platform, who, tokens, row, emails))
        got[who] = response.status_code
        if row.policy == "self" and who in ("other", "operator"):
            assert ids.user_id not in response.text, (who, response.text)
            assert ids.subscription_id not in response.text, (who, response.text)
    policies: dict[str, Callable[[str, int], bool]] = {
        "public": lambda who, code: code not in (401, 403),
        "self": lambda who, code: {"anonymous": code == 401, "operator-token": code == 403}
        .get(who, 200 <= code < 300 or (code == 404 and who != "owner")),
        "owner": lambda who, code: code == {"anonymous": 401, "owner": 202, "other": 404,
                                            "operator": 404, "operator-token": 403}[who],
        "operator": lambda who, code: {"anonymous": code == 401, "owner": code == 403,
                                       "other": code == 403}
        .get(who, code not in (401, 403)),
        "sender": lambda who, code: code == {"anonymous": 401, "owner": 200, "other": 404,
                                             "operator": 200, "operator-token": 200}[who],
    }
    expected = policies[row.policy]
    if row.ends_session:  # "log out everywhere" ended the shared sessions too
        for who in tokens:
            tokens[who] = platform.login(emails[who])
    wrong = {who: code for who, code in got.items() if not expected(who, code)}
    assert not wrong, f"{route} ({row.policy}): {got}"


def test_foreign_ids_alone_answer_404(
    platform: Platform, world: tuple[Ids, dict[str, str], dict[str, str]]
) -> None:
    """No user id in the body at all: the subscription (PostgreSQL) and the viewing session
    (Redis) are looked up, and another user's answer 404, like ids that do not exist."""
    ids, tokens, _ = world
    other = bearer(tokens["other"])
    cancel = platform.client.post(f"/subscriptions/{ids.subscription_id}/cancel", json={},
                                  headers=other)
    assert cancel.status_code == 404 and cancel.json()["detail"] == "not found"
    pay = VALID["record-payment"].call.json
    payment = {k: v for k, v in pay.items() if k != "user_id"}
    payment["subscription_id"] = ids.subscription_id
    assert platform.client.post("/payments", json=payment, headers=other).status_code == 404
    heartbeat = {k: v for k, v in VALID["playback-progress"].call.json.items()
                 if k != "user_id"}
    progress = platform.client.post(
        f"/playback/sessions/{ids.viewing_session_id}/progress", json=heartbeat,
        headers=other)
    assert progress.status_code == 404
    # The owner, with no user id either, is served.
    assert platform.client.post(
        f"/playback/sessions/{ids.viewing_session_id}/progress", json=heartbeat,
        headers=bearer(tokens["owner"])).status_code == 202


@pytest.mark.parametrize("bad", ['{"$ne": null}', "*", "?", "[a-z]", "a:b", "%2A", "..",
                                 '{"$where": "1"}'])
def test_operator_like_or_pattern_ids_are_refused(platform: Platform, bad: str) -> None:
    # A user of its own: the matrix's owner still has writes on their way to the store.
    user_id, token = platform.register("inject")
    owner = bearer(token)
    quoted = quote(bad, safe="")
    before = platform.client.get("/me", headers=owner).json()
    answers = [
        platform.client.patch(f"/users/{quoted}", json={"display_name": "X"}, headers=owner),
        platform.client.put(f"/titles/{quoted}/ratings/{user_id}", json={"stars": 5},
                            headers=owner),
        platform.client.post(f"/subscriptions/{quoted}/cancel", json={}, headers=owner),
        platform.client.post("/subscriptions", json={"plan": "basic", "user_id": {"$ne": None}},
                             headers=owner),
        platform.client.post("/auth/login", json={"email": {"$ne": None}, "password": bad}),
        platform.client.get(f"/me/payments?cursor={quoted}", headers=owner),
        platform.client.get(f"/events/{quoted}"),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert response.status_code != 401 or response.request.url.path == "/auth/login"
    assert platform.client.get("/me", headers=owner).json() == before


def test_me_reads_from_postgresql(
    platform: Platform, world: tuple[Ids, dict[str, str], dict[str, str]]
) -> None:
    user_id, token = platform.register("reader")
    me = bearer(token)
    started = platform.client.post("/subscriptions", json={"plan": "standard"}, headers=me)
    subscription_id = started.json()["resource_id"]
    deadline = time.monotonic() + 20
    while platform.accounts.get_subscription(subscription_id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    payment = {k: v for k, v in VALID["record-payment"].call.json.items() if k != "user_id"}
    for cents in (100, 200, 300):
        assert platform.client.post("/payments", json={
            **payment, "subscription_id": subscription_id, "amount_cents": cents},
            headers=me).status_code == 202
    titles = [f"0194a1b2-0000-7000-8000-{i:012x}" for i in (0xD1, 0xD2)]
    for title_id in titles:
        assert platform.client.put(f"/titles/{title_id}/ratings/{user_id}", json={
            "stars": 4}, headers=me).status_code == 202
    assert platform.client.put(f"/users/{user_id}/preferences", json={
        k: v for k, v in VALID["set-preferences"].call.json.items()},
        headers=me).status_code == 202
    deadline = time.monotonic() + 20
    while (len(platform.accounts.list_payments(user_id)) < 3
           or len(platform.accounts.list_ratings(user_id)) < 2
           or platform.accounts.get_preferences(user_id) is None):
        assert time.monotonic() < deadline, "the sink did not store everything"
        time.sleep(0.05)

    profile = platform.client.get("/me", headers=me).json()
    assert profile["user_id"] == user_id and profile["preferences"]["maturity_limit"] == "18+"
    subscription = platform.client.get("/me/subscription", headers=me).json()
    assert subscription["subscription_id"] == subscription_id
    assert subscription["status"] == "active" and subscription["plan"] == "standard"
    first = platform.client.get("/me/payments?limit=2", headers=me).json()
    assert [p["amount_cents"] for p in first["items"]] == [300, 200]
    assert "card_token" not in json.dumps(first)
    rest = platform.client.get(f"/me/payments?limit=2&cursor={first['next_cursor']}",
                               headers=me).json()
    assert [p["amount_cents"] for p in rest["items"]] == [100] and rest["next_cursor"] is None
    assert platform.client.get("/me/payments?limit=101", headers=me).status_code == 422
    ratings = platform.client.get("/me/ratings", headers=me).json()
    assert [r["title_id"] for r in ratings["items"]] == titles
    watching = platform.client.get("/me/continue-watching", headers=me)
    assert watching.status_code == 200 and watching.json() == {"items": []}


def test_the_plans_stream_limit_is_enforced_at_playback_start(
    platform: Platform, settings: Settings
) -> None:
    user_id, token = platform.register("viewer")
    live = RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
    try:
        now = datetime.now(UTC)
        subscription = example_event("subscription.started", user_id=user_id,
                                     subscription_id=f"{user_id[:-4]}5b5b",
                                     plan=PlanCode.BASIC, period_start=now,
                                     period_end=now + timedelta(days=30), occurred_at=now)
        playing = example_event("playback.started", user_id=user_id,
                                viewing_session_id=f"{user_id[:-4]}7e7e", occurred_at=now)
        assert [o.status.value for o in live.apply([subscription, playing],
                                                   allow_defer=False)] == ["stored"] * 2
        assert len(live.active_streams(user_id)) == 1
    finally:
        live.close()
    start = {k: v for k, v in VALID["playback-start"].call.json.items() if k != "user_id"}
    refused = platform.client.post("/playback/sessions", json=start, headers=bearer(token))
    assert refused.status_code == 409, refused.text
    assert "basic plan allows 1 concurrent stream" in refused.json()["detail"]
