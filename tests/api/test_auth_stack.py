"""Login, logout, revocation, rate limits, enumeration and secrets at rest, on the real stack:
Kafka, the real PostgreSQL sink storing the accounts, Redis holding the sessions."""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from polystream.api import create_app
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.audit.worker import AuditConfig, AuditHandler
from polystream.bus.ports import Record
from polystream.runtime.loop import BatchContext
from polystream.settings import Settings

from .stack_platform import PASSWORD, Platform, bearer, running_platform
from .test_kafka_stack import offsets, read_range

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def platform(settings: Settings) -> Iterator[Platform]:
    yield from running_platform(settings, session_ttl_s=60)


def _email(platform: Platform, user_id: str) -> str:
    user = platform.accounts.get_user(user_id)
    assert user is not None and user.email is not None
    return user.email


def test_login_gives_a_bearer_token_that_identifies_the_user(platform: Platform) -> None:
    user_id, token = platform.register("ada")
    response = platform.client.post("/auth/login", json={
        "email": _email(platform, user_id).upper(), "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60
    assert len(body["access_token"]) >= 43  # 256 bits in URL-safe base64
    assert body["access_token"] != token  # a new session per login
    assert response.headers["cache-control"] == "no-store"
    me = platform.client.get("/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == user_id and me.json()["role"] == "user"
    assert "password" not in me.text


def test_wrong_password_and_unknown_email_look_the_same(platform: Platform) -> None:
    user_id, _ = platform.register("eve")
    email = _email(platform, user_id)
    wrong: list[float] = []
    unknown: list[float] = []
    answers: set[tuple[int, str, str | None]] = set()
    for i in range(6):
        for bucket, body in ((wrong, {"email": email, "password": f"not it {i} at all"}),
                             (unknown, {"email": f"nobody-{uuid.uuid4().hex}@example.org",
                                        "password": PASSWORD})):
            started = time.perf_counter()
            response = platform.client.post("/auth/login", json=body)
            bucket.append(time.perf_counter() - started)
            answers.add((response.status_code, response.text,
                         response.headers.get("www-authenticate")))
    assert len(answers) == 1, answers
    [(status, _, _)] = answers
    assert status == 401
    # Both run one argon2id verification: an unknown email is not answered faster.
    ratio = statistics.median(unknown) / statistics.median(wrong)
    print(f"login 401 medians: wrong password {statistics.median(wrong) * 1000:.1f} ms, "
          f"unknown email {statistics.median(unknown) * 1000:.1f} ms")
    assert 0.6 < ratio < 1.7, (wrong, unknown)


def test_registering_a_taken_email_answers_exactly_like_a_new_one(platform: Platform) -> None:
    user_id, _ = platform.register("bob")
    email = _email(platform, user_id)
    body = {"email": email, "password": "another long passphrase", "display_name": "Bob 2",
            "country": "ES", "birth_year": 1980}
    taken = platform.client.post("/users?wait=5", json=body)
    fresh = platform.client.post("/users?wait=5", json={
        **body, "email": f"new-{uuid.uuid4().hex[:8]}@example.org"})
    assert taken.status_code == fresh.status_code == 202
    assert taken.json() == fresh.json()
    assert set(taken.headers) - {"content-length", "date"} == set(fresh.headers) - {
        "content-length", "date"}
    # The first owner keeps the account: the second password does not open it.
    refused = platform.client.post("/auth/login", json={"email": email,
                                                       "password": body["password"]})
    assert refused.status_code == 401
    platform.login(email)


def test_logout_ends_only_this_session(platform: Platform, settings: Settings) -> None:
    user_id, first = platform.register("cy")
    second = platform.login(_email(platform, user_id))
    start = offsets(settings, ["polystream.sessions"])
    assert platform.client.post("/auth/logout", headers=bearer(first)).status_code == 204
    gone = platform.client.get("/me", headers=bearer(first))
    assert gone.status_code == 401 and "invalid_token" in gone.headers["www-authenticate"]
    assert platform.client.get("/me", headers=bearer(second)).status_code == 200
    assert platform.client.post("/auth/logout", headers=bearer(first)).status_code == 401
    events = [r["value"] for r in read_range(platform.settings, start,
                                             offsets(settings, ["polystream.sessions"]))
              if r["value"]["payload"].get("user_id") == user_id]
    assert [(e["type"], e["payload"]["reason"]) for e in events] == [
        ("session.ended", "logout")]


def test_revoke_all_ends_every_session(platform: Platform, settings: Settings) -> None:
    user_id, first = platform.register("dee")
    email = _email(platform, user_id)
    second, third = platform.login(email), platform.login(email)
    listed = platform.client.get("/me/sessions", headers=bearer(second)).json()["sessions"]
    assert len(listed) == 3 and sum(s["current"] for s in listed) == 1
    start = offsets(settings, ["polystream.sessions"])
    revoked = platform.client.delete("/me/sessions", headers=bearer(third))
    assert revoked.status_code == 200 and revoked.json() == {"revoked": 3}
    for token in (first, second, third):
        assert platform.client.get("/me", headers=bearer(token)).status_code == 401
    ended = [r["value"] for r in read_range(platform.settings, start,
                                            offsets(settings, ["polystream.sessions"]))
             if r["value"]["payload"].get("user_id") == user_id]
    assert len(ended) == 3 and {e["payload"]["reason"] for e in ended} == {"revoked"}
    assert {e["payload"]["session_id"] for e in ended} == {s["session_id"] for s in listed}


def test_login_publishes_session_started_without_the_token(
    platform: Platform, settings: Settings
) -> None:
    user_id, _ = platform.register("fay")
    start = offsets(settings, ["polystream.sessions"])
    token = platform.login(_email(platform, user_id))
    events = [r for r in read_range(platform.settings, start,
                                    offsets(settings, ["polystream.sessions"]))
              if r["value"]["payload"].get("user_id") == user_id]
    assert [r["value"]["type"] for r in events] == ["session.login_started"]
    assert token not in json.dumps(events[0]["value"])
    assert token.encode() not in events[0]["raw"]


def test_sliding_expiry(settings: Settings) -> None:
    for platform in running_platform(settings, session_ttl_s=2):
        _, token = platform.register("gil")
        for _ in range(3):  # used every second: lives well past its 2 s
            time.sleep(1.0)
            assert platform.client.get("/me", headers=bearer(token)).status_code == 200
        time.sleep(3.2)
        assert platform.client.get("/me", headers=bearer(token)).status_code == 401


def test_rate_limits_per_account_and_per_address(settings: Settings) -> None:
    for platform in running_platform(settings, login_attempts_per_account=3,
                                     login_attempts_per_address=6, login_window_s=30):
        user_id, _ = platform.register("hal")
        email = _email(platform, user_id)
        app = platform.client.app
        # Each client its own address, so the buckets are this test's.
        one = TestClient(app, client=(f"10.{uuid.uuid4().int % 250}.0.1", 5000))
        other = TestClient(app, client=(f"10.{uuid.uuid4().int % 250}.1.2", 5000))
        wrong = {"email": email, "password": "wrong wrong wrong"}
        codes = [one.post("/auth/login", json=wrong).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        limited = one.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert limited.status_code == 429  # even the right password, for now
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        # The account is limited from any address.
        assert other.post("/auth/login", json=wrong).status_code == 429
        # Per address: many accounts tried from one address.
        third = TestClient(app, client=(f"10.{uuid.uuid4().int % 250}.2.3", 5000))
        codes = [third.post("/auth/login", json={
            "email": f"x{i}-{uuid.uuid4().hex[:6]}@example.org", "password": PASSWORD,
        }).status_code for i in range(7)]
        assert codes == [401] * 6 + [429]


def _raw(value: object) -> bytes:
    """A reply of a client without decode_responses: bytes (the stubs say bytes | str)."""
    assert isinstance(value, bytes), value
    return value


def test_no_token_or_password_in_clear_anywhere(
    platform: Platform, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    start = offsets(settings)
    user_id, token = platform.register("ivy")
    assert platform.client.get("/me", headers=bearer(token)).status_code == 200
    secrets = [token.encode(), PASSWORD.encode()]
    # Redis: every key and every value.
    client = redis.Redis.from_url(settings.redis.url)
    found_keys = 0
    for key in client.scan_iter(count=1000):
        found_keys += 1
        kind = client.type(key)
        values: list[bytes]
        if kind == b"string":
            values = [_raw(client.get(key) or b"")]
        elif kind == b"hash":
            values = [b"%s=%s" % (_raw(f), _raw(v)) for f, v in client.hgetall(key).items()]
        elif kind == b"set":
            values = [_raw(m) for m in client.smembers(key)]
        elif kind == b"zset":
            values = [_raw(m) for m in client.zrange(key, 0, -1)]  # the members
        else:
            values = []
        blob = key + b"".join(values)
        for secret in secrets:
            assert secret not in blob, key
    assert found_keys > 0
    # PostgreSQL: every row of every table of the accounts database, as text.
    with psycopg.connect(platform.settings.postgres.dsn(), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            for (row,) in conn.execute(f"SELECT t::text FROM {table} t").fetchall():
                for secret in secrets:
                    assert secret.decode() not in row, table
    # Kafka: everything published since the test began (users, sessions, receipts...).
    # Opened with the platform's keys (its accounts database), as its consumers do.
    records = read_range(platform.settings, start, offsets(settings))
    assert any(r["value"].get("type") == "session.login_started" for r in records)
    blob = json.dumps([r["value"] for r in records]).encode() + b"".join(
        r["raw"] for r in records)
    for secret in secrets:
        assert secret not in blob
    # The audit trail: the run's records audited into a real OpenSearch index of its own.
    audited = audit_into_opensearch(settings, [r["record"] for r in records])
    assert any(doc.get("type") == "session.login_started" for doc in audited)
    blob = json.dumps(audited).encode()
    for secret in secrets:
        assert secret not in blob
    # The logs of the process.
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret.decode() not in logs
    assert user_id


def audit_into_opensearch(settings: Settings, records: list[Record]) -> list[dict[str, Any]]:
    """Run the auditor's handler in-process over ``records`` into an index prefix of its own;
    every document it wrote (their ``_source``), then drop the index."""
    index = OpenSearchAuditIndex(settings.opensearch.model_copy(
        update={"index_prefix": f"test-audit-secrets-{uuid.uuid4().hex[:12]}"}))
    index.ensure()
    try:
        handler = AuditHandler(index=index, secret=b"test-audit-secret", config=AuditConfig())
        # No dead letter is expected here: a handler that tried to publish one fails the test.
        ctx = BatchContext(consumer=cast(Any, None), publisher=cast(Any, None),
                           stop=threading.Event())
        handler.handle(records, ctx)
        index.refresh()
        found = index.client.search(index=index.pattern, body={
            "query": {"match_all": {}}, "size": 10_000})
        docs = [hit["_source"] for hit in found["hits"]["hits"]]
        assert handler.stats.events > 0 and len(docs) >= handler.stats.events
        return docs
    finally:
        index.drop_everything()
        index.close()


def test_the_operator_role_opens_operator_endpoints(platform: Platform) -> None:
    _, user = platform.register("joe")
    _, operator = platform.register("kim", role="operator")
    flag = {"value": True}
    assert platform.client.put("/flags/test.auth-flag", json=flag,
                               headers=bearer(user)).status_code == 403
    assert platform.client.put("/flags/test.auth-flag", json=flag,
                               headers=bearer(operator)).status_code == 202
    me = platform.client.get("/me", headers=bearer(operator)).json()
    assert me["role"] == "operator"


def test_app_without_stores_answers_503_for_login(settings: Settings) -> None:
    from polystream.bootstrap_api import build_deps

    broken = settings.model_copy(update={"postgres": settings.postgres.model_copy(
        update={"port": 1, "connect_timeout_s": 1.0})})
    with TestClient(create_app(build_deps(broken))) as client:
        started = time.monotonic()
        response = client.post("/auth/login", json={"email": "a@example.org",
                                                    "password": PASSWORD})
        assert response.status_code == 503, response.text
        assert time.monotonic() - started < 3.0


def test_an_email_with_a_nul_is_a_failed_login_not_a_store_error(platform: Platform) -> None:
    # PostgreSQL refuses NUL in text: asking it made this a 503 (found by the property run).
    response = platform.client.post("/auth/login", json={"email": "ada\u0000@example.org",
                                                         "password": PASSWORD})
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == platform.client.post("/auth/login", json={
        "email": "nobody-at-all@example.org", "password": PASSWORD}).json()["detail"]
