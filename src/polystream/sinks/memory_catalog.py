"""The catalog store in memory: the embedded adapter, and the reference the contract tests
hold :class:`~polystream.sinks.mongo.MongoCatalogStore` to.

The rules (which event wins) and the document shapes are the domain's
(:mod:`polystream.domain.catalog_rules`, :mod:`polystream.domain.catalog`); this store only
keeps the documents MongoDB would hold, under the same collection names
(:mod:`polystream.stores.catalog_layout`), so that the snapshots of both stores compare.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from polystream.domain.catalog import (
    AssetInfo,
    Direction,
    Document,
    Edge,
    asset_info_from_document,
    edge_from_document,
    edge_order,
    title_from_document,
)
from polystream.domain.catalog_rules import keys_of, stored_state
from polystream.domain.events import AnyEvent, Genre, RelationKind, Sink, TitleKind
from polystream.domain.outcomes import Outcome
from polystream.sinks.catalog_read_side import CatalogReadSide
from polystream.stores.catalog_layout import (
    ASSET_CHUNKS,
    ASSET_FILES,
    RELATIONS,
    TITLES,
    plan_writes,
)


class InMemoryCatalogStore(CatalogReadSide):
    """The catalog store in dicts: the embedded adapter, same semantics as MongoDB.

    It keeps the very documents MongoDB would hold (tombstones included), so that
    :meth:`snapshot` of both stores can be compared. Thread-safe, because in the embedded
    mode the API reads while the worker writes.
    """

    sink = Sink.MONGO

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._titles: dict[str, Document] = {}
        self._relations: dict[str, Document] = {}
        self._asset_files: dict[str, Document] = {}
        self._asset_data: dict[str, bytes] = {}

    # -- write side ---------------------------------------------------------------------

    def ensure_indexes(self) -> list[str]:
        """Nothing to create; here so both stores start the same way."""
        return []

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        """See :meth:`MongoCatalogStore.apply`; ``allow_defer`` changes nothing for the catalog."""
        keys = keys_of(events)
        with self._lock:
            state = stored_state(
                titles=_stored(self._titles, keys["title"]),
                relations=_stored(self._relations, keys["relation"]),
                asset_files=_stored(self._asset_files, keys["asset"]),
            )
            plan = plan_writes(events, state)
            self._titles.update(plan.titles)
            self._relations.update(plan.relations)
            for asset_id, asset in plan.assets.items():
                self._asset_files[asset_id] = asset.file
                self._asset_data[asset_id] = asset.data
            return plan.outcomes

    def close(self) -> None:
        return None

    # -- read side ----------------------------------------------------------------------

    def get_title(self, title_id: str) -> Document | None:
        """The title's current ``TitleUpserted`` payload (JSON form); None if absent/removed."""
        with self._lock:
            doc = self._titles.get(title_id)
            return None if doc is None else copy.deepcopy(title_from_document(doc))

    def _titles_page(self, kind: TitleKind | str | None, genre: Genre | str | None, limit: int,
                     offset: int) -> list[Document]:
        with self._lock:
            docs = sorted(self._matching(kind, genre), key=lambda d: (-d["year"], d["_id"]))
            page = docs[offset : offset + limit]
            return [
                copy.deepcopy(data)
                for doc in page
                if (data := title_from_document(doc)) is not None
            ]

    def count_titles(
        self, kind: TitleKind | str | None = None, genre: Genre | str | None = None
    ) -> int:
        with self._lock:
            return sum(1 for _ in self._matching(kind, genre))

    def _matching(
        self, kind: TitleKind | str | None, genre: Genre | str | None
    ) -> Iterable[Document]:
        kind_value = None if kind is None else TitleKind(kind).value
        genre_value = None if genre is None else Genre(genre).value
        for doc in self._titles.values():
            if doc.get("removed"):
                continue
            if kind_value is not None and doc["kind"] != kind_value:
                continue
            if genre_value is not None and genre_value not in doc["genres"]:
                continue
            yield doc

    def _edges(self, title_id: str, direction: Direction,
               kind: RelationKind | str | None) -> list[Edge]:
        kind_value = None if kind is None else RelationKind(kind).value
        with self._lock:
            docs = [
                doc
                for doc in self._relations.values()
                if not doc.get("removed")
                and (kind_value is None or doc["kind"] == kind_value)
                and (
                    (direction in ("out", "both") and doc["from_title_id"] == title_id)
                    or (direction in ("in", "both") and doc["to_title_id"] == title_id)
                )
            ]
        docs.sort(key=edge_order)
        return [edge_from_document(doc) for doc in docs]

    def title_documents(self) -> list[Document]:
        """The stored title documents, tombstones included, for the read side's queries.

        Not copied: a write replaces a document, it never changes one in place, so the list
        stays a consistent view; callers must not modify the documents.
        """
        with self._lock:
            return list(self._titles.values())

    def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None:
        with self._lock:
            doc = self._asset_files.get(asset_id)
            if doc is None:
                return None
            return asset_info_from_document(doc), self._asset_data[asset_id]

    def list_assets(self, title_id: str) -> list[AssetInfo]:
        """A title's assets, by asset id."""
        with self._lock:
            docs = [d for d in self._asset_files.values() if d["metadata"]["title_id"] == title_id]
        return [asset_info_from_document(doc) for doc in sorted(docs, key=lambda d: d["_id"])]

    # -- verification -------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[Document]]:
        """Every stored document, sorted by ``_id`` (asset bytes as their sha256)."""
        with self._lock:
            return {
                TITLES: copy.deepcopy(sorted(self._titles.values(), key=_by_id)),
                RELATIONS: copy.deepcopy(sorted(self._relations.values(), key=_by_id)),
                ASSET_FILES: copy.deepcopy(sorted(self._asset_files.values(), key=_by_id)),
                ASSET_CHUNKS: [
                    {"files_id": key, "sha256": hashlib.sha256(data).hexdigest()}
                    for key, data in sorted(self._asset_data.items())
                ],
            }


def _stored(documents: Mapping[str, Document], ids: set[str]) -> list[Document]:
    return [documents[key] for key in ids & documents.keys()]


def _by_id(doc: Mapping[str, Any]) -> str:
    return str(doc["_id"])


__all__ = ["InMemoryCatalogStore"]
