"""Embedded mode (`polystream demo --serve`): the demo operator logs in and uses the API on the
in-memory platform, and a user registered through the API can log in once the sinks ran."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from polystream.api import ApiDeps, create_app
from polystream.bus.memory import InMemoryEventPublisher
from polystream.cli.demo import DEMO_EMAIL, DEMO_PASSWORD, add_demo_operator
from polystream.embedded import EmbeddedPlatform

from .conftest import FAST_HASHER, make_settings


@pytest.fixture
def platform() -> EmbeddedPlatform:
    return EmbeddedPlatform()


@pytest.fixture
def served(platform: EmbeddedPlatform) -> Iterator[TestClient]:
    platform.start()
    add_demo_operator(platform)
    app = create_app(ApiDeps(settings=make_settings(), publisher=InMemoryEventPublisher(
        platform.broker), receipts=platform.receipts, audit=platform.audit,
        source="api-embedded", accounts=platform.accounts, live=platform.live,
        password_hasher=FAST_HASHER))
    try:
        with TestClient(app) as client:
            yield client
    finally:
        platform.stop()


def test_the_demo_operator_logs_in(served: TestClient) -> None:
    login = served.post("/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = served.get("/me", headers=auth)
    assert me.status_code == 200 and me.json()["role"] == "operator"
    assert served.put("/flags/demo.flag", json={"value": 1}, headers=auth).status_code == 202
    assert served.get("/audit/events?limit=1", headers=auth).status_code == 200
    assert served.get("/me/continue-watching", headers=auth).json() == {"items": []}


def test_a_registered_user_logs_in_once_the_sinks_ran(served: TestClient) -> None:
    body = {"email": "new@example.org", "password": "a long enough passphrase",
            "display_name": "New", "country": "PT", "birth_year": 1999}
    assert served.post("/users", json=body).status_code == 202
    deadline = time.monotonic() + 10
    while (login := served.post("/auth/login", json={
            "email": body["email"], "password": body["password"]})).status_code != 200:
        assert login.status_code == 401 and time.monotonic() < deadline
        time.sleep(0.05)
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert served.get("/me", headers=auth).json()["email"] == body["email"]
    assert served.put("/flags/demo.flag", json={"value": 1}, headers=auth).status_code == 403


def test_the_audit_trail_holds_neither_token_nor_password(
    platform: EmbeddedPlatform, served: TestClient
) -> None:
    login = served.post("/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    token = login.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert served.post("/auth/logout", headers=auth).status_code == 204
    assert platform.wait_drained(timeout_s=10)
    docs = json.dumps(list(platform.audit._docs.values()), default=str)
    assert "session.login_started" in docs and "session.ended" in docs
    assert token not in docs and DEMO_PASSWORD not in docs


def test_delete_me_erases_the_account_on_the_in_memory_platform(
    platform: EmbeddedPlatform, served: TestClient
) -> None:
    """The in-memory adapters do what the real stack does (tests/api/test_erasure_stack.py):
    the token stops at once, the account's personal data goes, another account stays."""
    tokens: dict[str, str] = {}
    for who in ("gone", "kept"):
        body = {"email": f"{who}@example.org", "password": "a long enough passphrase",
                "display_name": f"Canary {who}", "country": "PT", "birth_year": 1999}
        assert served.post("/users", json=body).status_code == 202
        assert platform.wait_drained(timeout_s=10)
        login = served.post("/auth/login", json={"email": body["email"],
                                                 "password": body["password"]})
        assert login.status_code == 200, login.text
        tokens[who] = login.json()["access_token"]
    auth = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
    gone_id = served.get("/me", headers=auth["gone"]).json()["user_id"]
    erased = served.delete("/me", headers=auth["gone"])
    assert erased.status_code == 202 and erased.json()["type"] == "user.erased"
    assert served.get("/me", headers=auth["gone"]).status_code == 401
    assert served.get("/me", headers=auth["kept"]).json()["display_name"] == "Canary kept"
    assert platform.wait_drained(timeout_s=10)
    user = platform.accounts.get_user(gone_id)
    assert user is not None and user.erased and user.email is None
    assert user.display_name is None
    assert platform.accounts.get_user_by_email("gone@example.org") is None
    assert served.post("/auth/login", json={"email": "gone@example.org",
                                            "password": "a long enough passphrase"}
                       ).status_code == 401
    docs = json.dumps(list(platform.audit._docs.values()), default=str)
    assert "user.erased" in docs and gone_id not in docs
    # Nobody erases without a token.
    assert served.delete("/me").status_code == 401
