"""The public reads: catalog pages and details (MongoDB, cache-aside in Redis), the relations
graph, posters, rankings and public flags (Redis).

Cache-aside, and why it stays fresh:

* ``cache:title:{id}`` holds a title's detail body. The Redis sink deletes it and bumps
  ``cache:catalog:version`` whenever it applies a ``catalog.title_*`` event (same script step
  as the event's effect).
* ``cache:browse:{digest}`` holds a page body prefixed with the catalog version it was built
  at; a page of an older version is a miss. Any catalog change thus retires every page.
* An entry is written only if the catalog version is still the one read before the store
  was queried (a compare-and-set in Redis), so a read that raced with an invalidation cannot
  put the old document back. The sinks of MongoDB and Redis run apart, so the Redis sink may
  invalidate *before* MongoDB holds the new version; a title is therefore cached only when
  its version is at least the one the Redis sink has applied, and a page only when each of
  its titles is. What remains (a page missing a title MongoDB has not stored yet) is bounded
  by the short page TTL.

Every store call has a budget (``reads.store_timeout_s``): past it, or when the store
refuses, the endpoint answers 503. The cache is an optimisation: when Redis fails, reads go
to MongoDB directly and skip the cache for ``reads.cache_retry_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final, Literal, TypeVar

from prometheus_client import Counter

from polystream.domain.catalog import AssetInfo, Document
from polystream.domain.events import Genre
from polystream.reads.catalog import CatalogReads, StoreUnavailable
from polystream.reads.live import LiveReads
from polystream.reads.titles import TitleQuery, encode_cursor, position_of
from polystream.settings import ReadSettings
from polystream.store_errors import StoreError

log = logging.getLogger("polystream.reads")

T = TypeVar("T")
CacheResult = Literal["hit", "miss"]

CACHE_LOOKUPS: Final = Counter(
    "polystream_read_cache_lookups",
    "Cache-aside lookups of the public read API, by cache and result (error: Redis failed, "
    "bypass: skipped after a recent failure)",
    ["cache", "result"],
)

#: Relations followed from each title of the first hop (strongest first).
_HOP2_FANOUT: Final = 50
MAX_RELATED: Final = 50


class Ranking(StrEnum):
    TOP_RATED = "top-rated"
    MOST_WATCHED = "most-watched"
    TRENDING = "trending"


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON body, already encoded (a cache hit is sent as stored)."""

    content: bytes
    cache: CacheResult


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ReadService:
    def __init__(self, catalog: CatalogReads, live: LiveReads, settings: ReadSettings) -> None:
        self.catalog = catalog
        self.live = live
        self.settings = settings
        self._cache_down_until = 0.0
        self._inflight: dict[tuple[str, str], asyncio.Future[Body]] = {}

    async def close(self) -> None:
        await self.catalog.close()
        await self.live.close()

    # -- budgets --------------------------------------------------------------------------

    async def _bounded(self, store: str, call: Awaitable[T], timeout_s: float | None = None
                       ) -> T:
        budget = self.settings.store_timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(call, budget)
        except TimeoutError:
            raise StoreUnavailable(f"{store} did not answer within {budget:g}s") from None
        except StoreError as exc:
            log.warning("%s read failed: %s", store, exc)
            raise StoreUnavailable(f"{store} is unavailable") from exc

    def mongo(self, call: Awaitable[T]) -> Awaitable[T]:
        return self._bounded("MongoDB", call)

    def redis(self, call: Awaitable[T]) -> Awaitable[T]:
        return self._bounded("Redis", call)

    # -- the cache ------------------------------------------------------------------------

    async def _cache(self, name: str, call: Awaitable[T]) -> T | None:
        """A cache operation, or None when the cache is unusable (reads go on without it)."""
        if time.monotonic() < self._cache_down_until:
            if asyncio.iscoroutine(call):
                call.close()
            CACHE_LOOKUPS.labels(name, "bypass").inc()
            return None
        try:
            return await self._bounded("Redis", call, self.settings.cache_timeout_s)
        except StoreUnavailable:
            self._cache_down_until = time.monotonic() + self.settings.cache_retry_s
            CACHE_LOOKUPS.labels(name, "error").inc()
            return None

    async def _lookup(self, kind: str, key: str) -> tuple[str | None, str | None]:
        found = await self._cache(kind, self.live.cache_read(kind, key))
        return (None, None) if found is None else found

    async def _store(self, kind: str, key: str, value: str, ttl_s: int, version: str | None,
                     titles: Sequence[Document]) -> None:
        if version is None:
            return
        ids = [str(t["title_id"]) for t in titles]
        applied = await self._cache(kind, self.live.title_versions(ids))
        if applied is None:
            return
        for title, seen in zip(titles, applied, strict=True):
            if seen is not None and int(title.get("version") or 0) < seen:
                return  # MongoDB has not caught up with the Redis sink yet
        await self._cache(kind, self.live.cache_write(kind, key, value, ttl_s, version))

    # -- titles ---------------------------------------------------------------------------

    async def _once(self, key: tuple[str, str], compute: Callable[[], Awaitable[Body]]
                    ) -> Body:
        """Concurrent misses of one entry share one store read (no stampede on a store that
        is slow already: FerretDB scans the collection for every query)."""
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(compute())
        self._inflight[key] = task

        def finished(done: asyncio.Future[Body]) -> None:
            self._inflight.pop(key, None)
            if not done.cancelled():
                done.exception()  # retrieved, even when every waiter went away

        task.add_done_callback(finished)
        return await asyncio.shield(task)

    async def title(self, title_id: str) -> Body:
        entry, version = await self._lookup("title", title_id)
        if entry is not None:
            CACHE_LOOKUPS.labels("title", "hit").inc()
            return Body(entry.encode(), "hit")
        CACHE_LOOKUPS.labels("title", "miss").inc()
        return await self._once(("title", title_id),
                                lambda: self._title_from_store(title_id, version))

    async def _title_from_store(self, title_id: str, version: str | None) -> Body:
        doc = await self.mongo(self.catalog.title(title_id))
        if doc is None:
            raise NotFound(title_id)
        body = dumps(doc)
        await self._store("title", title_id, body, self.settings.title_cache_ttl_s, version,
                          [doc])
        return Body(body.encode(), "miss")

    async def browse(self, query: TitleQuery) -> Body:
        key = query.cache_key()
        entry, version = await self._lookup("browse", key)
        if entry is not None:
            stored_version, _, body = entry.partition("\n")
            if stored_version == version:
                CACHE_LOOKUPS.labels("browse", "hit").inc()
                return Body(body.encode(), "hit")
        CACHE_LOOKUPS.labels("browse", "miss").inc()
        return await self._once(("browse", key),
                                lambda: self._page_from_store(query, key, version))

    async def _page_from_store(self, query: TitleQuery, key: str, version: str | None
                               ) -> Body:
        items = await self.mongo(self.catalog.browse(query, query.limit + 1))
        more = len(items) > query.limit
        items = items[: query.limit]
        cursor = encode_cursor(query, position_of(items[-1], query.sort)) if more else None
        body = dumps({"items": items, "next_cursor": cursor})
        await self._store("browse", key, f"{version}\n{body}", self.settings.browse_cache_ttl_s,
                          version, items)
        return Body(body.encode(), "miss")

    async def related(self, title_id: str, limit: int) -> dict[str, Any]:
        """Titles up to two relations away, each once (at its shortest distance, strongest
        path), strongest first within a distance."""
        if await self.mongo(self.catalog.summaries([title_id])) == {}:
            raise NotFound(title_id)
        first: dict[str, tuple[float, str]] = {}
        for edge in await self.mongo(self.catalog.edges([title_id])):
            other = edge.to_title_id if edge.from_title_id == title_id else edge.from_title_id
            if other != title_id and edge.weight > first.get(other, (-1.0, ""))[0]:
                first[other] = (edge.weight, edge.kind.value)
        hop1 = sorted(first, key=lambda t: (-first[t][0], t))[:_HOP2_FANOUT]
        second: dict[str, tuple[float, str, str]] = {}
        for edge in await self.mongo(self.catalog.edges(hop1)) if hop1 else []:
            for near, far in ((edge.from_title_id, edge.to_title_id),
                              (edge.to_title_id, edge.from_title_id)):
                if near not in first or far == title_id or far in first:
                    continue
                score = first[near][0] * edge.weight
                best = second.get(far)
                if best is None or (score, near) > (best[0], best[2]):
                    second[far] = (score, edge.kind.value, near)
        found = await self.mongo(self.catalog.summaries([*first, *second]))
        items: list[dict[str, Any]] = []
        for other, (weight, kind) in first.items():
            if other in found:
                items.append({"title": found[other], "hops": 1, "relation": kind,
                              "score": weight, "via": None})
        for other, (score, kind, via) in second.items():
            if other in found:
                items.append({"title": found[other], "hops": 2, "relation": kind,
                              "score": score, "via": via})
        items.sort(key=lambda i: (i["hops"], -i["score"], i["title"]["title_id"]))
        return {"title_id": title_id, "items": items[:limit]}

    async def poster(self, title_id: str) -> AssetInfo:
        info = await self.mongo(self.catalog.poster(title_id))
        if info is None:
            raise NotFound(title_id)
        return info

    async def poster_bytes(self, info: AssetInfo) -> AsyncIterator[bytes]:
        """The bytes, the first chunk fetched within the budget (so a dead store is a 503,
        not a response that stops after its headers)."""
        stream = self.catalog.asset_bytes(info)
        first = await self.mongo(anext(stream, b""))

        async def rest() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in stream:
                yield chunk

        return rest()

    # -- live ---------------------------------------------------------------------------

    async def ranking(self, ranking: Ranking, genre: Genre | None, limit: int,
                      day: date | None) -> dict[str, Any]:
        if ranking is Ranking.TOP_RATED:
            rows = await self.redis(self.live.top_rated(limit, genre))
        elif ranking is Ranking.TRENDING:
            rows = await self.redis(self.live.trending(limit, genre))
        else:
            day = day or datetime.now(UTC).date()
            rows = await self.redis(self.live.most_watched(day, limit, genre))
        body: dict[str, Any] = {"ranking": ranking.value, "genre": genre}
        if ranking is Ranking.MOST_WATCHED:
            body["day"] = day.isoformat() if day else None
        body["items"] = [{"rank": n, "title_id": title, "score": score}
                         for n, (title, score) in enumerate(rows, start=1)]
        return body

    async def public_flags(self) -> dict[str, Any]:
        flags = await self.redis(self.live.flags())
        prefixes = tuple(self.settings.public_flag_prefixes)
        return {name: value for name, value in sorted(flags.items())
                if prefixes and name.startswith(prefixes)}

    # -- readiness ----------------------------------------------------------------------

    async def check(self) -> dict[str, str]:
        """Each read store: "ok" or why not (both asked at once, each within its budget)."""

        async def one(name: str, call: Awaitable[None]) -> str:
            try:
                await self._bounded(name, call)
            except StoreUnavailable as exc:
                return f"unavailable ({exc})"
            return "ok"

        mongo, redis = await asyncio.gather(one("MongoDB", self.catalog.ping()),
                                            one("Redis", self.live.ping()))
        return {"mongo": mongo, "redis": redis}


__all__ = ["CACHE_LOOKUPS", "Body", "NotFound", "Ranking", "ReadService"]
