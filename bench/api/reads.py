"""The read endpoints of the API benchmark: the stores are filled with the simulator's first
:data:`~bench.api.requests.PREFIX` events (its catalog of 300 titles with posters, its
ratings and viewing sessions), applied by the very stores the sinks use, into the run's own
MongoDB database and Redis logical database. Then:

* ``title``: ``GET /titles/{id}`` over 200 titles, so after the first pass every request is
  a cache hit (the number the issue asks for: the cached detail);
* ``browse``: ``GET /titles`` over 20 filter combinations (pages cached after first use);
* ``browse-uncached``: ``GET /titles`` over thousands of distinct queries, each asked once
  per pass: cache misses, the cost of MongoDB (FerretDB) paging;
* ``trending``: ``GET /rankings/trending`` with and without a genre (Redis only; computed on
  read from the daily counts, no cache).
"""

from __future__ import annotations

from itertools import product
from typing import Final
from urllib.parse import urlencode

from bench.api.requests import PREFIX, TEMPLATES, Call
from bench.pipeline.stream import events
from polystream.domain.events import AnyEvent, Genre, Sink, decode, event_types_for
from polystream.settings import Settings

#: Genres of the browse mix (the most common ones of the simulator's catalog).
_GENRES: Final = (Genre.DRAMA, Genre.COMEDY, Genre.THRILLER, Genre.ACTION, Genre.DOCUMENTARY)


def _decoded() -> list[AnyEvent]:
    return [decode(e.value) for e in events(PREFIX)]


def title_ids() -> list[str]:
    seen: dict[str, None] = {}
    for event in events(PREFIX):
        if event.type == "catalog.title_upserted":
            seen.setdefault(event.key, None)
    return list(seen)[:TEMPLATES]


def seed_stores(settings: Settings) -> dict[str, int]:
    """Apply the prefix's catalog events to MongoDB and its live events to Redis."""
    from polystream.sinks.mongo import MongoCatalogStore
    from polystream.sinks.redis_live import RedisLiveStore

    decoded = _decoded()
    catalog = MongoCatalogStore.from_settings(settings.mongo)
    live = RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
    try:
        catalog.ensure_indexes()
        mongo_types, redis_types = event_types_for(Sink.MONGO), event_types_for(Sink.REDIS)
        for_mongo = [e for e in decoded if e.type in mongo_types]
        for_redis = [e for e in decoded if e.type in redis_types]
        for start in range(0, len(for_mongo), 500):
            catalog.apply(for_mongo[start : start + 500], allow_defer=False)
        for start in range(0, len(for_redis), 2000):
            live.apply(for_redis[start : start + 2000], allow_defer=False)
    finally:
        catalog.close()
        live.close()
    return {"mongo": len(for_mongo), "redis": len(for_redis)}


def title_details() -> list[Call]:
    return [Call("GET", f"/titles/{title_id}") for title_id in title_ids()]


def browse_pages() -> list[Call]:
    calls = [Call("GET", "/titles"), Call("GET", "/titles?sort=title&limit=50")]
    for genre, sort in product(_GENRES, ("newest", "oldest", "title")):
        calls.append(Call("GET", "/titles?" + urlencode({"genre": genre.value, "sort": sort})))
    calls += [Call("GET", "/titles?kind=series"), Call("GET", "/titles?max_maturity=13%2B"),
              Call("GET", "/titles?q=the")]
    return calls[:20]


def browse_uncached() -> list[Call]:
    calls = []
    for year, genre, sort, limit in product(range(1950, 2026), _GENRES, ("newest", "title"),
                                            (10, 20, 30)):
        query = {"genre": genre.value, "year_from": year, "sort": sort, "limit": limit}
        calls.append(Call("GET", "/titles?" + urlencode(query)))
    return calls


def trending() -> list[Call]:
    return [Call("GET", "/rankings/trending")] + [
        Call("GET", f"/rankings/trending?genre={genre.value}") for genre in _GENRES]


READ_ENDPOINTS: Final = {
    "title": title_details,
    "browse": browse_pages,
    "browse-uncached": browse_uncached,
    "trending": trending,
}
