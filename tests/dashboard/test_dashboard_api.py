"""The dashboard over the embedded platform: page, assets, auth, the SSE feed, lineage,
search and posters, checked against what the in-memory stores hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import SecretStr

from polystream.api.app import create_app
from polystream.api.deps import ApiDeps
from polystream.bus.memory import InMemoryEventPublisher
from polystream.domain.events import decode
from polystream.embedded import EmbeddedPlatform
from polystream.observe.embedded import embedded_observatory
from polystream.settings import ApiSettings, Settings
from polystream.simulate import SimConfig, generate

TOKEN = "dashboard-test-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}

EVENTS = 4000


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[EmbeddedPlatform, datetime]]:
    p = EmbeddedPlatform()
    p.start()
    last = b""
    for ev in generate(SimConfig(seed=3, users=120, titles=40), limit=EVENTS):
        p.publisher.publish_fire(ev.topic, ev.key, ev.value)
        last = ev.value
    # One record no consumer can read: the dead-letter view must show it.
    p.publisher.publish_fire("polystream.users", "broken", b"{not an envelope")
    p.publisher.flush()
    assert p.wait_drained(60)
    yield p, decode(last).occurred_at
    p.stop()


@pytest.fixture(scope="module")
def client(platform: tuple[EmbeddedPlatform, datetime]) -> Iterator[TestClient]:
    p, now = platform
    app = create_app(ApiDeps(
        settings=Settings(api=ApiSettings(operator_token=SecretStr(TOKEN))),
        publisher=InMemoryEventPublisher(p.broker), receipts=p.receipts, audit=p.audit,
        password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        observatory=embedded_observatory(p, clock=lambda: now)))
    with TestClient(app) as c:
        yield c


def events_of(body: str) -> list[tuple[str, Any]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_page_and_assets_are_served_without_any_external_url(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert '<script src="/dashboard/static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        r = client.get(f"/dashboard/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert "http://" not in r.text and "https://" not in r.text
    assert client.get("/dashboard/static/../router.py").status_code == 404
    assert client.get("/dashboard/static/nope.js").json()["detail"] == "no such dashboard file"


def test_docs_use_the_vendored_swagger_ui(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn.jsdelivr" not in docs.text and "/docs/static/swagger-ui-bundle.js" in docs.text
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/docs/static/other.js").status_code == 404


@pytest.mark.parametrize("path", ["/dashboard/stream?frames=1", "/dashboard/search?q=x",
                                  "/dashboard/lineage/abc", "/dashboard/posters/abc"])
def test_feeds_need_the_operator_token(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "operator token required: send 'Authorization: "
                              "Bearer <operator token>'", "errors": []}
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid operator token"


def test_stream_sends_history_then_frames_matching_the_stores(
        client: TestClient, platform: tuple[EmbeddedPlatform, datetime]) -> None:
    p, _ = platform
    r = client.get("/dashboard/stream?frames=2", headers=OPERATOR)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = events_of(r.text)
    assert [e for e, _ in events] == ["history", "frame", "frame"]
    snap = events[-1][1]["snapshot"]
    event_topics = {t: n for t, n in snap["produced"].items()
                    if not t.endswith(("deadletter", "receipts"))}
    assert sum(event_topics.values()) == EVENTS + 1
    assert {g["sink"]: g["lag"] for g in snap["groups"]} == {
        "postgres": 0, "mongo": 0, "redis": 0, "audit": 0}
    stores = {s["name"]: s for s in snap["stores"]}
    assert all(s["healthy"] for s in stores.values())
    assert stores["audit"]["sizes"]["documents"] == p.audit.count()
    assert stores["mongo"]["sizes"]["titles"] == len(p.catalog.snapshot()["titles"])
    assert stores["postgres"]["sizes"]["users"] == len(p.accounts.dump()["users"])
    top = snap["top_rated"]
    assert top and len(top) <= 10
    assert top[0]["title"] == (p.catalog.get_title(top[0]["title_id"]) or {})["title"]
    assert top[0]["poster"] is not None
    assert snap["recent_events"]
    assert snap["dead_letters"] == 1
    [dead] = snap["latest_dead_letters"]
    assert dead["reason"] and dead["consumer"] == "postgres", dead


def test_lineage_lists_every_store(client: TestClient,
                                   platform: tuple[EmbeddedPlatform, datetime]) -> None:
    p, _ = platform
    rating = p.audit.search(type="rating.submitted", size=1).items[0]
    r = client.get(f"/dashboard/lineage/{rating.event_id}", headers=OPERATOR)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "rating.submitted"
    steps = {s["store"]: s["status"] for s in body["steps"]}
    assert list(steps) == ["postgres", "mongo", "redis", "audit"]
    assert steps["postgres"] == "stored" and steps["redis"] == "stored"
    assert steps["audit"] == "stored" and steps["mongo"] == "not a consumer"


def test_unknown_lineage_is_a_404_in_the_error_shape(client: TestClient) -> None:
    r = client.get("/dashboard/lineage/00000000-0000-0000-0000-000000000000", headers=OPERATOR)
    assert r.status_code == 404
    assert r.json() == {"detail": "no audit document for this event id", "errors": []}


def test_search_and_posters(client: TestClient,
                            platform: tuple[EmbeddedPlatform, datetime]) -> None:
    p, _ = platform
    title_id = p.live.top_rated(1)[0][0]
    name = (p.catalog.get_title(title_id) or {})["title"]
    found = client.get("/dashboard/search", params={"q": name}, headers=OPERATOR)
    assert found.status_code == 200
    assert "catalog.title_upserted" in {e["type"] for e in found.json()}
    assert client.get("/dashboard/search?q=", headers=OPERATOR).status_code == 422
    asset = next(a for a in p.catalog.list_assets(title_id) if a.kind == "poster")
    img = client.get(f"/dashboard/posters/{asset.asset_id}", headers=OPERATOR)
    assert img.status_code == 200 and img.headers["content-type"] == asset.content_type
    assert len(img.content) == asset.size_bytes
    assert client.get("/dashboard/posters/none", headers=OPERATOR).status_code == 404
