"""The embedded mode (`polystream demo --serve`) serves the public reads from its in-memory
stores, fed by its own sink workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polystream.bus.topology import topic_of
from polystream.domain.events import AnyEvent, encode
from polystream.embedded import EmbeddedPlatform
from polystream.settings import Settings

from .conftest import READ_SETTINGS, make_client
from .data import POSTER, catalog_events, live_events, title_event


@pytest.fixture
def platform() -> Iterator[EmbeddedPlatform]:
    p = EmbeddedPlatform()
    p.start()
    try:
        yield p
    finally:
        p.stop()


def publish(p: EmbeddedPlatform, events: list[AnyEvent]) -> None:
    p.publish_all((topic_of(e.type).value, e.key, encode(e)) for e in events)
    assert p.wait_drained(30)


def test_demo_platform_serves_every_read_endpoint(platform: EmbeddedPlatform) -> None:
    publish(platform, catalog_events() + live_events()[12:])
    service = platform.read_service(READ_SETTINGS)
    with make_client(service, Settings(reads=READ_SETTINGS)) as client:
        assert [i["title_id"] for i in client.get("/titles?q=harbour").json()["items"]] == \
            ["t02", "t01", "t08"]
        assert client.get("/titles/t03").json()["seasons"]
        assert client.get("/titles/t01").headers["x-cache"] == "miss"
        assert client.get("/titles/t01").headers["x-cache"] == "hit"
        related = client.get("/titles/t01/related").json()["items"]
        assert [i["title"]["title_id"] for i in related] == ["t02", "t04", "t08"]
        assert client.get("/titles/t01/poster").content == POSTER
        top = client.get("/rankings/top-rated").json()["items"]
        assert [i["title_id"] for i in top] == ["t01", "t02", "t04"]
        assert client.get("/flags").json() == {"flags": {"public.banner": "hello"}}
        assert client.get("/readyz").json()["checks"]["mongo"] == "ok"
        # A catalog change through the sinks invalidates the cached detail.
        publish(platform, [title_event("t01", version=5, title="Night Harbour Redux")])
        response = client.get("/titles/t01")
        assert response.headers["x-cache"] == "miss"
        assert response.json()["title"] == "Night Harbour Redux"
