"""The read side of the MongoDB catalog store on pymongo's asyncio client, for the API."""

from __future__ import annotations

from typing import Self

from pymongo import ASCENDING, AsyncMongoClient

from polystream.domain.catalog import (
    AssetInfo,
    Direction,
    Document,
    Edge,
    asset_info_from_document,
    check_page,
    edge_from_document,
    title_from_document,
)
from polystream.domain.events import Genre, RelationKind, TitleKind
from polystream.settings import MongoSettings
from polystream.stores.mongo_client import (
    EDGE_SORT,
    TITLE_SORT,
    AsyncCatalogCollections,
    assemble,
    client_options,
    edges_filter,
    titles_filter,
    titles_out,
    translated,
)


class MongoCatalogReader(AsyncCatalogCollections):
    """The read side of the catalog store on pymongo's asyncio client, for the API.

    Same methods and results as the read side of :class:`MongoCatalogStore`, awaited.
    """

    @classmethod
    def from_settings(cls, settings: MongoSettings) -> Self:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.url, **client_options(settings.server_selection_timeout_s)
        )
        return cls(client, settings.database, owns_client=True)

    async def get_title(self, title_id: str) -> Document | None:
        with translated("reading a title"):
            doc = await self._titles.find_one({"_id": title_id})
        return None if doc is None else title_from_document(doc)

    async def list_titles(
        self,
        kind: TitleKind | str | None = None,
        genre: Genre | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Document]:
        check_page(limit, offset)
        with translated("listing titles"):
            cursor = self._titles.find(titles_filter(kind, genre)).sort(TITLE_SORT)
            docs = await cursor.skip(offset).limit(limit).to_list()
        return titles_out(docs)

    async def count_titles(
        self, kind: TitleKind | str | None = None, genre: Genre | str | None = None
    ) -> int:
        with translated("counting titles"):
            return await self._titles.count_documents(titles_filter(kind, genre))

    async def related(
        self,
        title_id: str,
        direction: Direction = "out",
        kind: RelationKind | str | None = None,
    ) -> list[Edge]:
        query = edges_filter(title_id, direction, kind)
        with translated("reading relations"):
            docs = await self._relations.find(query).sort(EDGE_SORT).to_list()
        return [edge_from_document(doc) for doc in docs]

    async def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None:
        with translated("reading an asset"):
            file_doc = await self._files.find_one({"_id": asset_id})
            if file_doc is None:
                return None
            chunks = await self._chunks.find({"files_id": asset_id}).sort("n", ASCENDING).to_list()
        return assemble(file_doc, chunks)

    async def list_assets(self, title_id: str) -> list[AssetInfo]:
        with translated("listing assets"):
            docs = (
                await self._files.find({"metadata.title_id": title_id})
                .sort("_id", ASCENDING)
                .to_list()
            )
        return [asset_info_from_document(doc) for doc in docs]



__all__ = ["MongoCatalogReader"]
