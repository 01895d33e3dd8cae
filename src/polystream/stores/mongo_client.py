"""What every MongoDB catalog adapter shares: the sink's store (:mod:`polystream.sinks.mongo`)
and the API's reads (:mod:`polystream.reads.catalog`).

Client options, the translation of driver errors into the project's store errors, and the
queries of the sink's read side.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)

from polystream.domain.catalog import (
    AssetInfo,
    Direction,
    Document,
    assembled_intact,
    asset_info_from_document,
    check_direction,
    title_from_document,
)
from polystream.domain.events import Genre, RelationKind, TitleKind
from polystream.store_errors import StoreError, TransientStoreError
from polystream.stores.catalog_layout import ASSET_CHUNKS, ASSET_FILES, RELATIONS, TITLES

TITLE_SORT: Final = [("year", DESCENDING), ("_id", ASCENDING)]
EDGE_SORT: Final = [
    ("weight", DESCENDING),
    ("from_title_id", ASCENDING),
    ("to_title_id", ASCENDING),
    ("kind", ASCENDING),
]
LIVE: Final[Document] = {"removed": {"$ne": True}}

#: A socket that stays silent this long is a hung server: the batch fails as transient and is
#: retried, instead of the worker waiting forever (pymongo's default is no timeout).
_SOCKET_TIMEOUT_MS: Final = 60_000


def client_options(
    timeout_s: float, *, socket_timeout_ms: int = _SOCKET_TIMEOUT_MS, appname: str = "polystream"
) -> dict[str, Any]:
    """Options of a pymongo client that gives up connecting after ``timeout_s``."""
    timeout_ms = int(timeout_s * 1000)
    return {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": socket_timeout_ms,
        # Aware UTC datetimes back, like the ones events carry.
        "tz_aware": True,
        "tzinfo": UTC,
        "appname": appname,
    }


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Driver errors become the project's: the worker retries transient ones, and must never
    see a pymongo exception."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout, WTimeoutError, WriteConcernError) as exc:
        # ConnectionFailure covers AutoReconnect, NetworkTimeout and
        # ServerSelectionTimeoutError.
        raise TransientStoreError(
            f"MongoDB unavailable while {action}: {type(exc).__name__}: {exc}"
        ) from exc
    except PyMongoError as exc:
        # Nothing here is caused by an event's content (documents are built from validated
        # models), so an unexpected server error is retried and then pauses the sink: safer
        # than skipping events, and visible as lag.
        raise TransientStoreError(
            f"MongoDB failed while {action}: {type(exc).__name__}: {exc}"
        ) from exc


def titles_filter(kind: TitleKind | str | None, genre: Genre | str | None) -> Document:
    query: Document = dict(LIVE)
    if kind is not None:
        query["kind"] = TitleKind(kind).value
    if genre is not None:
        query["genres"] = Genre(genre).value
    return query


def edges_filter(title_id: str, direction: Direction, kind: RelationKind | str | None) -> Document:
    check_direction(direction)
    query: Document = dict(LIVE)
    if direction == "out":
        query["from_title_id"] = title_id
    elif direction == "in":
        query["to_title_id"] = title_id
    else:
        query["$or"] = [{"from_title_id": title_id}, {"to_title_id": title_id}]
    if kind is not None:
        query["kind"] = RelationKind(kind).value
    return query


def titles_out(docs: Sequence[Document]) -> list[Document]:
    return [data for doc in docs if (data := title_from_document(doc)) is not None]


def assemble(file_doc: Document, chunks: Sequence[Document]) -> tuple[AssetInfo, bytes]:
    """A GridFS file's bytes from its chunks, checked against the stored size and sha256.

    Checked on every read because GridFS has no atomic write: bytes that are incomplete or
    mixed up must fail loudly, not be served as an image.
    """
    info = asset_info_from_document(file_doc)
    data = b"".join(bytes(chunk["data"]) for chunk in chunks)
    if not assembled_intact(info, [int(chunk["n"]) for chunk in chunks], data):
        raise StoreError(f"asset {info.asset_id} is corrupt in the store")
    return info, data


class AsyncCatalogCollections:
    """The catalog's collections on an asyncio client, which is closed with them only when
    they own it: the base of the asynchronous readers."""

    def __init__(
        self, client: AsyncMongoClient[Document], database: str, *, owns_client: bool = False
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        db = client.get_database(database)
        self._titles: AsyncCollection[Document] = db[TITLES]
        self._relations: AsyncCollection[Document] = db[RELATIONS]
        self._files: AsyncCollection[Document] = db[ASSET_FILES]
        self._chunks: AsyncCollection[Document] = db[ASSET_CHUNKS]

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()


__all__ = [
    "EDGE_SORT",
    "LIVE",
    "TITLE_SORT",
    "AsyncCatalogCollections",
    "assemble",
    "client_options",
    "edges_filter",
    "titles_filter",
    "titles_out",
    "translated",
]
