"""The public read endpoints on both backends (see conftest): filters, keyset paging, the
relations graph, posters with ETag, rankings, public flags, cache-aside with invalidation,
and inputs that must never reach a store as operators or patterns."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from prometheus_client import REGISTRY

from polystream.domain.events import new_event
from polystream.domain.examples import example_payload, movie_title
from polystream.reads.invalidation import CacheInvalidatingStore

from .conftest import OPERATOR_TOKEN, ReadHarness
from .data import POSTER, TITLES, title_event

LIVE_IDS = [t[0] for t in TITLES if t[0] != "t11"]


def ids(body: dict[str, Any]) -> list[str]:
    return [item["title_id"] for item in body["items"]]


def all_pages(reads: ReadHarness, query: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        url = f"/titles?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = reads.client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging never ended")


def test_browse_default_order_is_newest_first_without_removed(reads: ReadHarness) -> None:
    body = reads.client.get("/titles?limit=100").json()
    expected = sorted((t for t in TITLES if t[0] != "t11"), key=lambda t: (-t[3], t[0]))
    assert ids(body) == [t[0] for t in expected]
    assert body["next_cursor"] is None
    assert set(body["items"][0]) == {"title_id", "kind", "title", "year", "genres",
                                     "maturity_rating", "runtime_minutes", "version"}


@pytest.mark.parametrize(("query", "expected"), [
    ("kind=series", ["t03", "t06"]),
    ("genre=comedy", ["t06", "t05", "t09"]),
    ("year_from=2010&year_to=2015", ["t07", "t06", "t05"]),
    ("max_maturity=7%2B", ["t06", "t05", "t09", "t04"]),
    ("q=HARBOUR", ["t02", "t01", "t08"]),
    ("q=harbour&sort=title", ["t08", "t01", "t02"]),
    ("genre=drama&year_from=2021&max_maturity=13%2B", ["t08"]),
    ("sort=oldest&genre=drama", ["t04", "t12", "t01", "t08", "t02"]),
    ("q=Track%3A%20The", ["t06"]),
])
def test_browse_filters(reads: ReadHarness, query: str, expected: list[str]) -> None:
    response = reads.client.get(f"/titles?{query}")
    assert response.status_code == 200, response.text
    assert ids(response.json()) == expected


@pytest.mark.parametrize("query", ["sort=newest", "sort=oldest", "sort=title",
                                   "genre=drama&sort=title"])
def test_keyset_paging_visits_every_title_once_in_order(reads: ReadHarness, query: str) -> None:
    whole = ids(reads.client.get(f"/titles?{query}&limit=100").json())
    assert all_pages(reads, query, 2) == whole
    assert all_pages(reads, query, 3) == whole


def test_cursor_of_another_query_or_forged_is_400(reads: ReadHarness) -> None:
    cursor = reads.client.get("/titles?limit=2").json()["next_cursor"]
    other = reads.client.get(f"/titles?limit=2&genre=drama&cursor={cursor}")
    assert other.status_code == 400
    assert other.json()["errors"][0]["field"] == "query.cursor"
    for forged in ["eyJ4IjoxfQ", "!!!", "eyJmIjoiIiwidiI6eyIkbmUiOm51bGx9LCJpIjoidDAxIn0"]:
        response = reads.client.get(f"/titles?cursor={forged}")
        assert response.status_code == 400, forged
        assert response.json()["detail"] == "invalid cursor"


def test_page_size_is_capped(reads: ReadHarness) -> None:
    response = reads.client.get("/titles?limit=101")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.limit"


def test_title_detail_with_seasons_and_episodes(reads: ReadHarness) -> None:
    series = reads.client.get("/titles/t03").json()
    assert series["kind"] == "series" and series["title"] == "Orbit Station"
    assert series["seasons"] and series["seasons"][0]["episodes"][0]["episode_id"]
    movie = reads.client.get("/titles/t01").json()
    assert movie["runtime_minutes"] > 0 and movie["seasons"] == []
    assert reads.client.get("/titles/t11").status_code == 404  # removed
    missing = reads.client.get("/titles/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "title not found"


def lookups(cache: str, result: str) -> float:
    return REGISTRY.get_sample_value("polystream_read_cache_lookups_total",
                                     {"cache": cache, "result": result}) or 0.0


def test_title_cache_hit_then_invalidated_by_the_sink(reads: ReadHarness) -> None:
    hits, misses = lookups("title", "hit"), lookups("title", "miss")
    first = reads.client.get("/titles/t01")
    second = reads.client.get("/titles/t01")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.json() == second.json()
    assert lookups("title", "hit") == hits + 1 and lookups("title", "miss") == misses + 1
    reads.apply(title_event("t01", version=2, title="Night Harbour (Director's Cut)"))
    third = reads.client.get("/titles/t01")
    assert third.headers["x-cache"] == "miss"
    assert third.json()["title"] == "Night Harbour (Director's Cut)"
    assert reads.client.get("/titles/t01").headers["x-cache"] == "hit"


def test_title_is_not_cached_while_mongo_lags_behind_redis(reads: ReadHarness) -> None:
    # The Redis sink applied version 2 (and invalidated), MongoDB still holds version 1.
    reads.live.apply([title_event("t04", version=2, title="The Quiet Field II")])
    assert reads.client.get("/titles/t04").json()["version"] == 1
    assert reads.client.get("/titles/t04").headers["x-cache"] == "miss"
    reads.catalog.apply([title_event("t04", version=2, title="The Quiet Field II")])
    assert reads.client.get("/titles/t04").json()["title"] == "The Quiet Field II"


def test_browse_pages_cached_and_retired_by_any_catalog_change(reads: ReadHarness) -> None:
    url = "/titles?genre=comedy"
    assert reads.client.get(url).headers["x-cache"] == "miss"
    assert reads.client.get(url).headers["x-cache"] == "hit"
    reads.apply(title_event("t09", version=2, genres=["family"]))
    response = reads.client.get(url)
    assert response.headers["x-cache"] == "miss"
    assert ids(response.json()) == ["t06", "t05"]
    reads.apply(new_event(example_payload("catalog.title_removed", title_id="t06", version=9),
                          source="test"))
    assert ids(reads.client.get(url).json()) == ["t05"]


def test_related_two_hops_deduplicated(reads: ReadHarness) -> None:
    body = reads.client.get("/titles/t01/related").json()
    got = [(i["title"]["title_id"], i["hops"], i["via"]) for i in body["items"]]
    # t11 (removed) is left out; t08 once, at two hops through t02; t01 itself never.
    assert got == [("t02", 1, None), ("t04", 1, None), ("t08", 2, "t02")]
    assert body["items"][2]["score"] == pytest.approx(0.45)
    assert reads.client.get("/titles/t03/related").json()["items"] == []
    assert reads.client.get("/titles/t11/related").status_code == 404


def test_poster_etag_and_304(reads: ReadHarness) -> None:
    response = reads.client.get("/titles/t01/poster")
    assert response.status_code == 200
    assert response.content == POSTER
    assert response.headers["content-type"] == "image/png"
    etag = f'"{hashlib.sha256(POSTER).hexdigest()}"'
    assert response.headers["etag"] == etag
    assert "max-age" in response.headers["cache-control"]
    again = reads.client.get("/titles/t01/poster", headers={"If-None-Match": f'"x", W/{etag}'})
    assert again.status_code == 304 and again.content == b""
    stale = reads.client.get("/titles/t01/poster", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200
    assert reads.client.get("/titles/t02/poster").status_code == 404


def test_rankings(reads: ReadHarness) -> None:
    top = reads.client.get("/rankings/top-rated").json()
    assert [i["title_id"] for i in top["items"]] == ["t01", "t02", "t04"]
    assert top["items"][0]["rank"] == 1
    crime = reads.client.get("/rankings/top-rated?genre=crime").json()
    assert [i["title_id"] for i in crime["items"]] == ["t01", "t02"]
    for name in ("trending", "most-watched"):
        response = reads.client.get(f"/rankings/{name}?genre=drama&limit=5")
        assert response.status_code == 200 and response.json()["items"] == []
    assert reads.client.get("/rankings/most-watched?day=2025-01-15").json()["day"] == \
        "2025-01-15"
    assert reads.client.get("/rankings/worst").status_code == 422


def test_flags_lists_public_flags_only(reads: ReadHarness) -> None:
    assert reads.client.get("/flags").json() == {"flags": {"public.banner": "hello"}}


INJECTIONS = [
    "/titles/%7B%22%24ne%22%3Anull%7D",
    "/titles/%24where",
    "/titles/t0*",
    "/titles/t0%3F",
    "/titles/t%5B0%5D",
    "/titles/%2A/related",
    "/titles/%24ne/poster",
    "/titles?genre=%7B%22%24ne%22%3Anull%7D",
    "/titles?genre[$ne]=x",
    "/titles?kind=*",
    "/titles?q=%24where",
    "/titles?q=Night*",
    "/titles?q=a%3F",
    "/titles?q=%5Babc%5D",
    "/titles?year_from=%7B%22%24gt%22%3A0%7D",
    "/titles?filter=%7B%22%24where%22%3A%221%22%7D",
    "/rankings/top-rated?genre=*",
    "/rankings/top-rated?genre=drama%3F",
    "/rankings/%2A",
    "/flags?scope=*",
]


@pytest.mark.parametrize("url", INJECTIONS)
def test_operators_and_patterns_are_refused(reads: ReadHarness, url: str) -> None:
    before = reads.catalog.snapshot(), reads.live.dump()  # type: ignore[attr-defined]
    response = reads.client.get(url)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["detail"] and body["errors"]
    after = reads.catalog.snapshot(), reads.live.dump()  # type: ignore[attr-defined]
    assert after == before


def test_metrics_expose_cache_counters_to_operators_only(reads: ReadHarness) -> None:
    reads.client.get("/titles/t05")
    reads.client.get("/titles/t05")
    assert reads.client.get("/metrics").status_code == 401
    response = reads.client.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert response.status_code == 200
    assert 'polystream_read_cache_lookups_total{cache="title",result="hit"}' in response.text


def test_concurrent_misses_share_one_store_read(reads: ReadHarness) -> None:
    import asyncio

    calls = 0
    catalog = reads.service.catalog
    original = catalog.title

    async def counted(title_id: str) -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return await original(title_id)

    async def burst() -> list[str]:
        bodies = await asyncio.gather(*(reads.service.title("t05") for _ in range(10)))
        return [body.cache for body in bodies]

    catalog.title = counted  # type: ignore[method-assign]
    try:
        results = reads.client.portal.call(burst)  # type: ignore[union-attr]
    finally:
        catalog.title = original  # type: ignore[method-assign]
    assert results == ["miss"] * 10
    assert calls == 1


def test_mongo_sink_invalidates_when_it_stores_after_the_redis_sink(reads: ReadHarness
                                                                    ) -> None:
    mongo_sink = CacheInvalidatingStore(reads.catalog, reads.live)  # type: ignore[arg-type]
    assert reads.client.get("/titles/t10").headers["x-cache"] == "miss"
    assert reads.client.get("/titles?genre=action").headers["x-cache"] == "miss"
    assert reads.client.get("/titles?genre=action").headers["x-cache"] == "hit"
    # MongoDB stores the change first; the Redis sink has not applied it yet.
    renamed = title_event("t10", version=2, title="Alpha Protocol: Reloaded")
    newcomer = new_event(movie_title(title_id="t13", version=1, title="Beta Protocol",
                                     year=2024, genres=["action"]), source="test")
    outcomes = mongo_sink.apply([renamed, newcomer])
    assert [o.status.value for o in outcomes] == ["stored", "stored"]
    detail = reads.client.get("/titles/t10")
    assert detail.headers["x-cache"] == "miss"
    assert detail.json()["title"] == "Alpha Protocol: Reloaded"
    page = reads.client.get("/titles?genre=action")
    assert page.headers["x-cache"] == "miss"
    assert ids(page.json()) == ["t13", "t10"]
    # A replay stores nothing and retires nothing.
    assert reads.client.get("/titles?genre=action").headers["x-cache"] == "hit"
    assert [o.status.value for o in mongo_sink.apply([renamed])] == ["duplicate"]
    assert reads.client.get("/titles?genre=action").headers["x-cache"] == "hit"
