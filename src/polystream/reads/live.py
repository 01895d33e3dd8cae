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
from typing import Any, Protocol

from polystream.domain.events import Genre
from polystream.settings import RedisSettings


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

    def cache_read(self, kind: str, key: str) -> tuple[str | None, int]: ...

    def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: int
                    ) -> bool: ...

    def close(self) -> None: ...


class LiveReads:
    def __init__(self, store: LiveStoreReads, *, closer: Callable[[], None] | None = None
                 ) -> None:
        self.store = store
        self._closer = closer

    @classmethod
    def from_settings(cls, settings: RedisSettings, timeout_s: float) -> LiveReads:
        from polystream.sinks.redis_live import RedisLiveStore, connect

        # Half the budget per attempt: the client retries a dropped connection once.
        client = connect(settings.url, socket_timeout_s=max(0.1, timeout_s / 2))
        return cls(RedisLiveStore(client, prefix=settings.key_prefix), closer=client.close)

    async def top_rated(self, limit: int, genre: Genre | None) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self.store.top_rated, limit, genre)

    async def most_watched(self, day: date, limit: int, genre: Genre | None
                           ) -> list[tuple[str, float]]:
        rows = await asyncio.to_thread(self.store.most_watched, day, limit, genre)
        return [(title, float(count)) for title, count in rows]

    async def trending(self, limit: int, genre: Genre | None) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self.store.trending, limit, None, genre)

    async def flags(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.flags, "global")

    async def title_versions(self, title_ids: Sequence[str]) -> list[int | None]:
        return await asyncio.to_thread(self.store.title_versions, title_ids)

    async def cache_read(self, kind: str, key: str) -> tuple[str | None, int]:
        return await asyncio.to_thread(self.store.cache_read, kind, key)

    async def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: int
                          ) -> bool:
        return await asyncio.to_thread(self.store.cache_write, kind, key, value, ttl_s,
                                       if_version)

    async def ping(self) -> None:
        await asyncio.to_thread(self.store.catalog_version)

    async def close(self) -> None:
        if self._closer is not None:
            await asyncio.to_thread(self._closer)


__all__ = ["LiveReads", "LiveStoreReads"]
