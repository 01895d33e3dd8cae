"""The catalog as the public read API sees it: titles, browse pages, the relations graph and
poster bytes. One port, two adapters: MongoDB (pymongo's asyncio client, FerretDB or MongoDB)
and the embedded in-memory store; ``tests/contract/test_catalog_reads_contract.py`` holds both
to the same answers.

The MongoDB reader has its own client with short timeouts, separate from the sink's: a read
whose store is gone must fail within the API's 2-second budget, where the sink rightly waits
much longer before it gives up a batch.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, Self

from pymongo import ASCENDING, AsyncMongoClient

from polystream.domain.catalog import (
    AssetInfo,
    Direction,
    Document,
    Edge,
    asset_info_from_document,
    chunked,
    edge_from_document,
    title_from_document,
)
from polystream.domain.events import AssetKind, RelationKind
from polystream.reads.titles import TitleQuery, matches, mongo_filter, mongo_sort, sort_key
from polystream.settings import MongoSettings
from polystream.store_errors import StoreError
from polystream.stores.mongo_client import AsyncCatalogCollections, client_options, translated

#: Fields of a title in lists (browse pages, related titles); the detail has them all.
SUMMARY_FIELDS: Final = (
    "title_id", "kind", "title", "year", "genres", "maturity_rating", "runtime_minutes",
    "version",
)
_SUMMARY_PROJECTION: Final = {
    "_id": 1, "kind": 1, "title": 1, "year": 1, "genres": 1, "maturity_rating": 1,
    "runtime_minutes": 1, "version": 1, "removed": 1,
}


class StoreUnavailable(StoreError):
    """The store a read needs did not answer in time: the API answers 503."""


def summary(title: Mapping[str, Any]) -> Document:
    """A title read model (``title_from_document``) cut to :data:`SUMMARY_FIELDS`."""
    return {name: title.get(name) for name in SUMMARY_FIELDS}


class CatalogReads(Protocol):
    async def title(self, title_id: str) -> Document | None:
        """The title with its seasons and episodes; None when absent or removed."""
        ...

    async def browse(self, query: TitleQuery, limit: int) -> list[Document]:
        """Up to ``limit`` title summaries matching ``query``, in its order."""
        ...

    async def summaries(self, title_ids: Sequence[str]) -> dict[str, Document]:
        """Summaries of the live titles among ``title_ids``."""
        ...

    async def edges(self, title_ids: Sequence[str]) -> list[Edge]:
        """Live relations from or to any of ``title_ids``."""
        ...

    async def poster(self, title_id: str) -> AssetInfo | None:
        """The title's most recently uploaded poster."""
        ...

    def asset_bytes(self, info: AssetInfo) -> AsyncIterator[bytes]:
        """The asset's bytes, chunk by chunk."""
        ...

    async def ping(self) -> None:
        """Raises when the store cannot answer."""
        ...

    async def close(self) -> None: ...


def latest_poster(assets: Iterable[AssetInfo]) -> AssetInfo | None:
    posters = [a for a in assets if a.kind is AssetKind.POSTER]
    return max(posters, key=lambda a: (a.uploaded_at, a.asset_id), default=None)


# --- MongoDB ---------------------------------------------------------------------------------


class MongoCatalogReads(AsyncCatalogCollections):
    @classmethod
    def from_settings(cls, settings: MongoSettings, timeout_s: float) -> Self:
        options = client_options(
            timeout_s, socket_timeout_ms=int(timeout_s * 1000), appname="polystream-api-reads"
        )
        client: AsyncMongoClient[Document] = AsyncMongoClient(settings.url, **options)
        return cls(client, settings.database, owns_client=True)

    async def title(self, title_id: str) -> Document | None:
        with translated("reading a title"):
            doc = await self._titles.find_one({"_id": title_id})
        return None if doc is None else title_from_document(doc)

    async def browse(self, query: TitleQuery, limit: int) -> list[Document]:
        with translated("browsing titles"):
            docs = await (
                self._titles.find(mongo_filter(query), _SUMMARY_PROJECTION)
                .sort(mongo_sort(query.sort))
                .limit(limit)
                .to_list()
            )
        return [summary(t) for doc in docs if (t := title_from_document(doc)) is not None]

    async def summaries(self, title_ids: Sequence[str]) -> dict[str, Document]:
        if not title_ids:
            return {}
        with translated("reading titles"):
            docs = await self._titles.find(
                {"_id": {"$in": list(title_ids)}}, _SUMMARY_PROJECTION
            ).to_list()
        return {t["title_id"]: summary(t) for doc in docs
                if (t := title_from_document(doc)) is not None}

    async def edges(self, title_ids: Sequence[str]) -> list[Edge]:
        if not title_ids:
            return []
        ids = list(title_ids)
        with translated("reading relations"):
            docs = await self._relations.find({
                "removed": {"$ne": True},
                "$or": [{"from_title_id": {"$in": ids}}, {"to_title_id": {"$in": ids}}],
            }).to_list()
        return [edge_from_document(doc) for doc in docs]

    async def poster(self, title_id: str) -> AssetInfo | None:
        with translated("listing assets"):
            docs = await self._files.find({"metadata.title_id": title_id}).to_list()
        return latest_poster(asset_info_from_document(doc) for doc in docs)

    async def asset_bytes(self, info: AssetInfo) -> AsyncIterator[bytes]:
        # One chunk per batch: the response starts after the first chunk, whatever the size.
        digest = hashlib.sha256()
        expected = 0
        with translated("reading an asset"):
            cursor = self._chunks.find({"files_id": info.asset_id}).sort("n", ASCENDING)
            async for chunk in cursor.batch_size(1):
                if int(chunk["n"]) != expected:
                    raise StoreError(f"asset {info.asset_id} misses chunk {expected}")
                expected += 1
                data = bytes(chunk["data"])
                digest.update(data)
                yield data
        if digest.hexdigest() != info.sha256:
            # Headers are gone already; failing the stream makes the client see a truncated
            # body instead of a silently wrong image.
            raise StoreError(f"asset {info.asset_id} is corrupt in the store")

    async def ping(self) -> None:
        with translated("pinging"):
            await self._client.admin.command("ping")


# --- in memory -------------------------------------------------------------------------------


class CatalogSnapshot(Protocol):
    """What the in-memory reads need of the embedded catalog store (`InMemoryCatalogStore`)."""

    def get_title(self, title_id: str) -> Document | None: ...

    def title_documents(self) -> list[Document]: ...

    def related(self, title_id: str, direction: Direction = "out",
                kind: RelationKind | str | None = None) -> list[Edge]: ...

    def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None: ...

    def list_assets(self, title_id: str) -> list[AssetInfo]: ...


class MemoryCatalogReads:
    """The same reads over the embedded in-memory catalog store."""

    def __init__(self, store: CatalogSnapshot) -> None:
        self._store = store

    async def close(self) -> None:
        return None

    async def title(self, title_id: str) -> Document | None:
        return self._store.get_title(title_id)

    async def browse(self, query: TitleQuery, limit: int) -> list[Document]:
        docs = [doc for doc in self._store.title_documents() if matches(doc, query)]
        docs.sort(key=sort_key(query.sort))
        return [summary(t) for doc in docs[:limit]
                if (t := title_from_document(doc)) is not None]

    async def summaries(self, title_ids: Sequence[str]) -> dict[str, Document]:
        wanted = set(title_ids)
        return {t["title_id"]: summary(t) for doc in self._store.title_documents()
                if doc["_id"] in wanted and (t := title_from_document(doc)) is not None}

    async def edges(self, title_ids: Sequence[str]) -> list[Edge]:
        found: dict[tuple[str, str, str], Edge] = {}
        for title_id in title_ids:
            for edge in self._store.related(title_id, "both"):
                found[(edge.from_title_id, edge.to_title_id, edge.kind.value)] = edge
        return list(found.values())

    async def poster(self, title_id: str) -> AssetInfo | None:
        return latest_poster(self._store.list_assets(title_id))

    async def asset_bytes(self, info: AssetInfo) -> AsyncIterator[bytes]:
        found = self._store.get_asset(info.asset_id)
        if found is None:
            raise StoreError(f"asset {info.asset_id} vanished")
        for chunk in chunked(found[1]):
            yield chunk
            await asyncio.sleep(0)

    async def ping(self) -> None:
        return None


__all__ = [
    "SUMMARY_FIELDS",
    "CatalogReads",
    "MemoryCatalogReads",
    "MongoCatalogReads",
    "StoreUnavailable",
    "summary",
]
