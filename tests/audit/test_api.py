"""``/audit/events``: operators only, filters, pagination, lineage, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from polystream.api.audit import make_router
from polystream.api.errors import install_error_handlers
from polystream.audit.documents import event_document, lineage_update
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import AuditIndexUnavailable, AuditPage
from polystream.domain.events import Receipt, ReceiptStatus, Sink

from .conftest import SECRET, event_at

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "operator-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(index: Any, token: str = TOKEN) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(make_router(index, SecretStr(token)))
    return TestClient(app)


@pytest.fixture
def filled() -> tuple[InMemoryAuditIndex, list[Any]]:
    index = InMemoryAuditIndex()
    events = [event_at("rating.submitted" if i % 2 else "playback.progress",
                       T0 + timedelta(minutes=i), user_id=f"api-user-{i % 3}")
              for i in range(12)]
    index.index_batch([event_document(env, None, secret=SECRET) for env in events])
    index.index_batch([lineage_update(Receipt(
        event_id=events[0].event_id, event_type=events[0].type, sink=Sink.REDIS,
        status=ReceiptStatus.STORED, processed_at=T0 + timedelta(seconds=3)))])
    return index, events


def test_operators_only(filled: tuple[InMemoryAuditIndex, list[Any]]) -> None:
    index, events = filled
    client = _client(index)
    for path in ("/audit/events", f"/audit/events/{events[0].event_id}"):
        missing = client.get(path)
        assert missing.status_code == 401 and "WWW-Authenticate" in missing.headers
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get(path, headers={"Authorization": TOKEN}).status_code == 401
        assert client.get(path, headers=AUTH).status_code == 200
    # No token configured: nobody, not even with an empty bearer.
    closed = _client(index, token="")
    assert closed.get("/audit/events", headers={"Authorization": "Bearer "}).status_code == 403
    assert closed.get("/audit/events", headers=AUTH).status_code == 403


def test_filters_and_pages(filled: tuple[InMemoryAuditIndex, list[Any]]) -> None:
    index, events = filled
    client = _client(index)
    body = client.get("/audit/events", params={"limit": 5}, headers=AUTH).json()
    assert body["total"] == 12 and len(body["items"]) == 5
    seen = [item["doc_id"] for item in body["items"]]
    while body["next_cursor"]:
        response = client.get("/audit/events", params={"limit": 5,
                                                       "cursor": body["next_cursor"]},
                              headers=AUTH)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.json()
        seen += [item["doc_id"] for item in body["items"]]
    assert seen == [str(env.event_id) for env in reversed(events)]

    by_user = client.get("/audit/events", params={"user": "api-user-1",
                                                  "type": "rating.submitted"},
                         headers=AUTH).json()
    assert {(i["user_id"], i["type"]) for i in by_user["items"]} == {
        ("api-user-1", "rating.submitted")}
    window = client.get("/audit/events", params={
        "since": (T0 + timedelta(minutes=2)).isoformat(),
        "until": (T0 + timedelta(minutes=4)).isoformat()}, headers=AUTH).json()
    assert window["total"] == 2
    assert all("text" not in item for item in window["items"])


def test_one_event_with_its_lineage(filled: tuple[InMemoryAuditIndex, list[Any]]) -> None:
    index, events = filled
    client = _client(index)
    body = client.get(f"/audit/events/{events[0].event_id}", headers=AUTH).json()
    assert body["event_id"] == str(events[0].event_id)
    assert set(body["lineage"]) == {"audit", "redis"}
    assert body["lineage"]["redis"]["status"] == "stored"
    assert body["type"] == "playback.progress" and body["payload"]["position_seconds"] == 600
    unknown = client.get("/audit/events/0194a1b2-0000-7000-8000-00000000dead", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["detail"]
    assert client.get("/audit/events/not-a-uuid", headers=AUTH).status_code == 422


def test_bad_inputs_are_422(filled: tuple[InMemoryAuditIndex, list[Any]]) -> None:
    index, _ = filled
    client = _client(index)
    for params in ({"cursor": "garbage"}, {"limit": 0}, {"limit": 100_000},
                   {"since": "2025-01-01T00:00:00"},  # no offset: ambiguous
                   {"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}):
        response = client.get("/audit/events", params=params, headers=AUTH)
        assert response.status_code == 422, params
        assert response.json()["errors"]


class DownIndex(InMemoryAuditIndex):
    def search(self, **kwargs: Any) -> AuditPage:
        raise AuditIndexUnavailable("down")


def test_an_unavailable_index_is_503() -> None:
    response = _client(DownIndex()).get("/audit/events", headers=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"]
