"""The live store (Redis, or its in-memory twin) as the public read API sees it: rankings,
flags and the catalog cache.

Both live stores already answer these reads with the same results (their contract tests),
synchronously; this adapter runs them off the event loop. The API's Redis client is its own,
with short socket timeouts, so that a Redis that stopped answering fails a read within the
2-second budget instead of the sink's generous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, Protocol, TypeVar, cast

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from polystream.domain.events import Genre
from polystream.domain.live import cache_version
from polystream.store_errors import TransientStoreError

T = TypeVar("T")


class LiveStoreReads(Protocol):
    """What the read API uses of ``RedisLiveStore`` / ``InMemoryLiveStore``."""

    def top_rated(self, limit: int = 10, genre: Genre | str | None = None
                  ) -> list[tuple[str, float]]: ...

    def most_watched(self, day: date, limit: int = 10, genre: Genre | str | None = None
                     ) -> list[tuple[str, int]]: ...

    def trending(self, limit: int = 10, now: datetime | None = None,
                 genre: Genre | str | None = None) -> list[tuple[str, float]]: ...

    def flags(self, scope: str = "global") -> dict[str, Any]: ...

    def catalog_version(self) -> int: ...

    def title_versions(self, title_ids: Sequence[str]) -> list[int | None]: ...

    def cache_read(self, kind: str, key: str) -> tuple[str | None, str]: ...

    def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: str
                    ) -> bool: ...

    def close(self) -> None: ...


class LiveReads:
    """``store``'s reads, awaitable. ``inline`` calls them on the event loop (the in-memory
    store: microseconds, no I/O); otherwise each runs on a worker thread. ``fast`` serves the
    cache lookup, the hot path of every cached read, on redis-py's asyncio client instead:
    one MGET on the loop, without the thread hop (measured: that hop was most of the cost of
    a cache hit under load)."""

    def __init__(self, store: LiveStoreReads, *, closer: Callable[[], None] | None = None,
                 inline: bool = False, fast: FastCache | None = None) -> None:
        self.store = store
        self._closer = closer
        self._inline = inline
        self._fast = fast

    @classmethod
    def in_memory(cls, store: LiveStoreReads) -> LiveReads:
        return cls(store, inline=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def top_rated(self, limit: int, genre: Genre | None) -> list[tuple[str, float]]:
        return await self._run(self.store.top_rated, limit, genre)

    async def most_watched(self, day: date, limit: int, genre: Genre | None
                           ) -> list[tuple[str, float]]:
        rows = await self._run(self.store.most_watched, day, limit, genre)
        return [(title, float(count)) for title, count in rows]

    async def trending(self, limit: int, genre: Genre | None) -> list[tuple[str, float]]:
        return await self._run(self.store.trending, limit, None, genre)

    async def flags(self) -> dict[str, Any]:
        return await self._run(self.store.flags, "global")

    async def title_versions(self, title_ids: Sequence[str]) -> list[int | None]:
        return await self._run(self.store.title_versions, title_ids)

    async def cache_read(self, kind: str, key: str) -> tuple[str | None, str]:
        if self._fast is not None:
            return await self._fast.read(kind, key)
        return await self._run(self.store.cache_read, kind, key)

    async def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: str
                          ) -> bool:
        return await self._run(self.store.cache_write, kind, key, value, ttl_s, if_version)

    async def ping(self) -> None:
        await self._run(self.store.catalog_version)

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.close()
        if self._closer is not None:
            await asyncio.to_thread(self._closer)


class FastCache:
    """The cache lookup on redis-py's asyncio client (same keys as ``RedisLiveStore``)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._version_keys = (f"{prefix}:cache:catalog:version", f"{prefix}:cache:catalog:mongo")
        self._prefix = f"{prefix}:cache:"

    @classmethod
    def from_url(cls, url: str, prefix: str, socket_timeout_s: float) -> FastCache:
        client = aioredis.Redis.from_url(url, decode_responses=True,
                                         socket_timeout=socket_timeout_s,
                                         socket_connect_timeout=socket_timeout_s)
        return cls(client, prefix)

    async def read(self, kind: str, key: str) -> tuple[str | None, str]:
        try:
            entry, by_redis, by_mongo = cast(list[str | None], await self._client.mget(
                f"{self._prefix}{kind}:{key}", *self._version_keys))
        except RedisError as exc:
            raise TransientStoreError(f"redis unavailable: {exc}") from exc
        return entry, cache_version(by_redis, by_mongo)

    async def close(self) -> None:
        await self._client.aclose()


__all__ = ["FastCache", "LiveReads", "LiveStoreReads"]
