"""The catalog store in memory, and the catalog rules every catalog store shares.

The S2 MongoDB sink persists ``catalog.*`` events. This module holds what does not depend on
MongoDB, so that the in-memory store and :class:`~polystream.sinks.mongo.MongoCatalogStore`
cannot drift apart:

* the document shapes (a title, a title tombstone, a relation edge, a GridFS file), built
  from events and turned back into read models;
* the guards that make replays and out-of-order delivery harmless, and
  :func:`plan_batch`, which folds a batch over the current guard state into one outcome
  per event and the final document per key;
* :class:`InMemoryCatalogStore`, the embedded adapter and the reference the contract tests
  hold the MongoDB store to.

The rules, per key:

* titles: the highest ``version`` wins. A removal leaves a tombstone carrying its version,
  so an older upsert that arrives late cannot bring the title back; a removal wins a tie
  with an upsert of the same version (the contract says removals carry a higher version,
  so a tie is a producer bug, and the safe reading of it is "removed").
* relations: the latest event time wins, the event id breaking ties (UUIDv7, so that is
  also creation order). A removal leaves a tombstone for the same reason as titles.
  Relations may name titles that have not arrived yet (they can sit on another partition),
  so they are never refused for that.
* assets: immutable per ``asset_id``. The same bytes again is a duplicate; other bytes
  under a known id are refused (a new image needs a new id). Bytes that do not match the
  event's ``sha256`` or ``size_bytes`` can never be stored: :class:`PermanentStoreError`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from polystream.domain.events import (
    AnyEvent,
    AssetKind,
    AssetUploaded,
    Envelope,
    Genre,
    ImageType,
    ReceiptStatus,
    RelationAdded,
    RelationKind,
    RelationRemoved,
    Sink,
    TitleKind,
    TitleRemoved,
    TitleUpserted,
    typed_event,
)
from polystream.sinks.ports import DUPLICATE, STALE, STORED, Outcome, rejected
from polystream.store_errors import PermanentStoreError

Document = dict[str, Any]
Direction = Literal["out", "in", "both"]

#: MongoDB names, shared so that snapshots of both stores have the same keys.
TITLES: Final = "titles"
RELATIONS: Final = "relations"
ASSETS_BUCKET: Final = "assets"
ASSET_FILES: Final = f"{ASSETS_BUCKET}.files"
ASSET_CHUNKS: Final = f"{ASSETS_BUCKET}.chunks"

#: GridFS's default chunk size (255 KiB): the largest asset (512 KiB) takes three chunks.
CHUNK_SIZE: Final = 255 * 1024

#: Bounds of one page of ``list_titles``. MongoDB reads ``limit=0`` as "no limit", so zero is
#: refused rather than silently meaning "everything".
MAX_PAGE: Final = 1000

#: Store-side fields of a title document; everything else is the payload.
_TITLE_INTERNAL: Final = frozenset({"_id", "updated_at", "event_id", "removed"})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

_EXTENSIONS: Final[Mapping[str, str]] = {
    ImageType.PNG.value: "png",
    ImageType.JPEG.value: "jpg",
    ImageType.WEBP.value: "webp",
}


# ---------------------------------------------------------------------------------------
# Read models
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """A relation between two titles, as the read side sees it."""

    from_title_id: str
    to_title_id: str
    kind: RelationKind
    weight: float
    #: Event time of the ``catalog.relation_added`` that set it (microsecond precision).
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """Metadata of a stored image."""

    asset_id: str
    title_id: str
    kind: AssetKind
    content_type: ImageType
    size_bytes: int
    sha256: str
    filename: str
    #: Event time of the upload (microsecond precision).
    uploaded_at: datetime


# ---------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------


def to_micros(instant: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (instant - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def bson_time(instant: datetime) -> datetime:
    """``instant`` at BSON's millisecond precision.

    Documents carry event times as BSON dates for people and queries; cutting them here
    keeps both stores' documents identical. Guards compare ``event_time_us`` instead, which
    keeps the microseconds.
    """
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


# ---------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------


def relation_id(from_title_id: str, to_title_id: str, kind: RelationKind | str) -> str:
    """The ``_id`` of an edge. Ids cannot contain ``:``, so the parts never run together."""
    return f"{from_title_id}:{to_title_id}:{RelationKind(kind).value}"


def title_document(event: Envelope[TitleUpserted]) -> Document:
    payload = event.payload
    data = payload.model_dump(mode="json", exclude={"title_id"})
    # Per-kind fields: a movie document has no seasons, a series has no runtime.
    if payload.kind is TitleKind.MOVIE:
        data.pop("seasons", None)
    else:
        data.pop("runtime_minutes", None)
    return {
        "_id": payload.title_id,
        **data,
        "updated_at": bson_time(event.occurred_at),
        "event_id": str(event.event_id),
    }


def title_tombstone(event: Envelope[TitleRemoved]) -> Document:
    payload = event.payload
    return {
        "_id": payload.title_id,
        "version": payload.version,
        "removed": True,
        "updated_at": bson_time(event.occurred_at),
        "event_id": str(event.event_id),
    }


def title_from_document(doc: Mapping[str, Any]) -> Document | None:
    """The ``TitleUpserted`` payload (JSON form) a title document was made from."""
    if doc.get("removed"):
        return None
    data: Document = {"title_id": doc["_id"]}
    data.update((key, value) for key, value in doc.items() if key not in _TITLE_INTERNAL)
    data.setdefault("runtime_minutes", None)
    data.setdefault("seasons", [])
    return data


def relation_document(event: Envelope[RelationAdded | RelationRemoved]) -> Document:
    payload = event.payload
    doc: Document = {
        "_id": relation_id(payload.from_title_id, payload.to_title_id, payload.kind),
        "from_title_id": payload.from_title_id,
        "to_title_id": payload.to_title_id,
        "kind": payload.kind.value,
    }
    if isinstance(payload, RelationAdded):
        doc["weight"] = payload.weight
    else:
        doc["removed"] = True
    doc["updated_at"] = bson_time(event.occurred_at)
    doc["event_time_us"] = to_micros(event.occurred_at)
    doc["event_id"] = str(event.event_id)
    return doc


def edge_from_document(doc: Mapping[str, Any]) -> Edge:
    return Edge(
        from_title_id=doc["from_title_id"],
        to_title_id=doc["to_title_id"],
        kind=RelationKind(doc["kind"]),
        weight=float(doc["weight"]),
        updated_at=from_micros(int(doc["event_time_us"])),
    )


def asset_file_document(event: Envelope[AssetUploaded]) -> Document:
    """The GridFS ``files`` document of an upload (GridFS spec fields plus our metadata).

    ``uploadDate`` is the event time, not the time of writing, so that rebuilding the store
    by replay produces the same documents.
    """
    payload = event.payload
    extension = _EXTENSIONS.get(payload.content_type.value, "bin")
    return {
        "_id": payload.asset_id,
        "length": payload.size_bytes,
        "chunkSize": CHUNK_SIZE,
        "uploadDate": bson_time(event.occurred_at),
        "filename": f"{payload.kind.value}-{payload.asset_id}.{extension}",
        "metadata": {
            "title_id": payload.title_id,
            "kind": payload.kind.value,
            "content_type": payload.content_type.value,
            "size_bytes": payload.size_bytes,
            "sha256": payload.sha256,
            "event_id": str(event.event_id),
            "event_time_us": to_micros(event.occurred_at),
        },
    }


def asset_info_from_document(doc: Mapping[str, Any]) -> AssetInfo:
    meta = doc["metadata"]
    return AssetInfo(
        asset_id=doc["_id"],
        title_id=meta["title_id"],
        kind=AssetKind(meta["kind"]),
        content_type=ImageType(meta["content_type"]),
        size_bytes=int(meta["size_bytes"]),
        sha256=meta["sha256"],
        filename=doc["filename"],
        uploaded_at=from_micros(int(meta["event_time_us"])),
    )


def asset_bytes(event: Envelope[AssetUploaded]) -> bytes:
    """The decoded image of an upload, checked against the event's own size and checksum.

    The payload model checks this too, but a store must not trust that every event it is
    handed went through validation (an older, laxer producer; a hand-built event): bytes
    that do not match their checksum would be served as if they did.
    """
    payload = event.payload
    try:
        data = base64.b64decode(payload.data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentStoreError(event.event_id, "data_base64 is not valid base64") from None
    if len(data) != payload.size_bytes:
        raise PermanentStoreError(
            event.event_id,
            f"asset {payload.asset_id}: {len(data)} bytes decoded, size_bytes says "
            f"{payload.size_bytes}",
        )
    if hashlib.sha256(data).hexdigest() != payload.sha256:
        raise PermanentStoreError(
            event.event_id, f"asset {payload.asset_id}: sha256 does not match the bytes"
        )
    return data


# ---------------------------------------------------------------------------------------
# Guards and the batch planner
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TitleGuard:
    """What the version guard needs of a stored title."""

    version: int
    removed: bool
    #: Event that wrote the stored document: the compare-and-set token for the next write.
    event_id: str | None


@dataclass(frozen=True, slots=True)
class RelationGuard:
    event_time_us: int
    event_id: str | None
    removed: bool


def title_guard(doc: Mapping[str, Any]) -> TitleGuard:
    return TitleGuard(int(doc["version"]), bool(doc.get("removed", False)), doc.get("event_id"))


def relation_guard(doc: Mapping[str, Any]) -> RelationGuard:
    return RelationGuard(
        int(doc.get("event_time_us", 0)), doc.get("event_id"), bool(doc.get("removed", False))
    )


@dataclass(slots=True)
class CatalogState:
    """The guard state of the keys a batch touches. Absent key = never stored."""

    titles: dict[str, TitleGuard] = field(default_factory=dict)
    relations: dict[str, RelationGuard] = field(default_factory=dict)
    #: asset_id -> sha256 of the stored bytes.
    assets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewAsset:
    file: Document
    data: bytes


@dataclass(slots=True)
class CatalogPlan:
    """What to write for a batch: one outcome per event and the final document per key.

    Several events for one key in a batch become one write, of the state the last winning
    event leaves.
    """

    outcomes: list[Outcome]
    titles: dict[str, Document] = field(default_factory=dict)
    relations: dict[str, Document] = field(default_factory=dict)
    assets: dict[str, NewAsset] = field(default_factory=dict)


Key = tuple[Literal["title", "relation", "asset"], str]


def key_of(event: AnyEvent) -> Key | None:
    """The stored key an event acts on, or None for events that are not for this store."""
    match event.payload:
        case TitleUpserted() | TitleRemoved() as title:
            return ("title", title.title_id)
        case RelationAdded() | RelationRemoved() as edge:
            return ("relation", relation_id(edge.from_title_id, edge.to_title_id, edge.kind))
        case AssetUploaded() as asset:
            return ("asset", asset.asset_id)
        case _:
            return None


def keys_of(events: Iterable[AnyEvent]) -> dict[str, set[str]]:
    """The keys a batch touches, by kind of key."""
    keys: dict[str, set[str]] = {"title": set(), "relation": set(), "asset": set()}
    for event in events:
        key = key_of(event)
        if key is not None:
            keys[key[0]].add(key[1])
    return keys


def _title_outcome(current: TitleGuard | None, version: int, removal: bool) -> Outcome:
    if current is None or version > current.version:
        return STORED
    if version < current.version:
        return STALE
    if current.removed:
        if removal:
            return DUPLICATE
        return Outcome(ReceiptStatus.STALE, f"title was removed at version {version}")
    return STORED if removal else DUPLICATE


def _relation_outcome(current: RelationGuard | None, time_us: int, event_id: str) -> Outcome:
    if current is None:
        return STORED
    if current.event_id == event_id:
        return DUPLICATE
    if (time_us, event_id) > (current.event_time_us, current.event_id or ""):
        return STORED
    return STALE


def plan_batch(events: Sequence[AnyEvent], state: CatalogState) -> CatalogPlan:
    """Fold ``events`` in order over ``state`` (which is not modified).

    Every upload is checked before anything else, so a corrupt one raises
    :class:`PermanentStoreError` before any write of the batch happens.
    """
    decoded: dict[int, bytes] = {}
    for index, event in enumerate(events):
        if isinstance(upload := event.payload, AssetUploaded):
            decoded[index] = asset_bytes(typed_event(event, upload))
    titles = dict(state.titles)
    relations = dict(state.relations)
    assets = dict(state.assets)
    plan = CatalogPlan(outcomes=[])
    for index, event in enumerate(events):
        event_id = str(event.event_id)
        outcome: Outcome
        match event.payload:
            case TitleUpserted() | TitleRemoved() as title:
                removal = isinstance(title, TitleRemoved)
                outcome = _title_outcome(titles.get(title.title_id), title.version, removal)
                if outcome.status is ReceiptStatus.STORED:
                    titles[title.title_id] = TitleGuard(title.version, removal, event_id)
                    plan.titles[title.title_id] = (
                        title_tombstone(typed_event(event, title))
                        if isinstance(title, TitleRemoved)
                        else title_document(typed_event(event, title))
                    )
            case RelationAdded() | RelationRemoved() as edge:
                rid = relation_id(edge.from_title_id, edge.to_title_id, edge.kind)
                time_us = to_micros(event.occurred_at)
                outcome = _relation_outcome(relations.get(rid), time_us, event_id)
                if outcome.status is ReceiptStatus.STORED:
                    removal = isinstance(edge, RelationRemoved)
                    relations[rid] = RelationGuard(time_us, event_id, removal)
                    plan.relations[rid] = relation_document(typed_event(event, edge))
            case AssetUploaded() as asset:
                stored_sha = assets.get(asset.asset_id)
                if stored_sha is None:
                    outcome = STORED
                    assets[asset.asset_id] = asset.sha256
                    file = asset_file_document(typed_event(event, asset))
                    plan.assets[asset.asset_id] = NewAsset(file, decoded[index])
                elif stored_sha == asset.sha256:
                    outcome = DUPLICATE
                else:
                    outcome = rejected(
                        f"asset {asset.asset_id} already holds other bytes; "
                        "assets are immutable, upload new bytes under a new asset_id"
                    )
            case _:
                outcome = rejected(
                    f"{event.type} is not a catalog event (sink {Sink.MONGO.value})"
                )
        plan.outcomes.append(outcome)
    return plan


def check_direction(direction: str) -> None:
    if direction not in ("out", "in", "both"):
        raise ValueError("direction must be 'out', 'in' or 'both'")


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must not be negative")


# ---------------------------------------------------------------------------------------
# The in-memory store
# ---------------------------------------------------------------------------------------


class InMemoryCatalogStore:
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
            state = CatalogState(
                titles={
                    k: title_guard(self._titles[k]) for k in keys["title"] & self._titles.keys()
                },
                relations={
                    k: relation_guard(self._relations[k])
                    for k in keys["relation"] & self._relations.keys()
                },
                assets={
                    k: self._asset_files[k]["metadata"]["sha256"]
                    for k in keys["asset"] & self._asset_files.keys()
                },
            )
            plan = plan_batch(events, state)
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

    def list_titles(
        self,
        kind: TitleKind | str | None = None,
        genre: Genre | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Document]:
        """Titles, newest year first, then by id."""
        check_page(limit, offset)
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

    def related(
        self,
        title_id: str,
        direction: Direction = "out",
        kind: RelationKind | str | None = None,
    ) -> list[Edge]:
        """Edges from (``out``), to (``in``) or either side of (``both``) a title, strongest
        first."""
        check_direction(direction)
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
        docs.sort(key=lambda d: (-d["weight"], d["from_title_id"], d["to_title_id"], d["kind"]))
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


def _by_id(doc: Mapping[str, Any]) -> str:
    return str(doc["_id"])


__all__ = [
    "AssetInfo",
    "Direction",
    "Edge",
    "InMemoryCatalogStore",
    "plan_batch",
    "relation_id",
]
