"""The catalog's records and document shapes: titles, relations, posters (pure, no I/O).

The S2 sink keeps a title, a title tombstone, a relation edge and a GridFS file as documents.
Both catalog stores (in memory and MongoDB) hold the very same documents, so that their
snapshots compare; this module builds them from events and turns them back into the read
models (:class:`Edge`, :class:`AssetInfo`, a title's payload) that the read side, the
observatory and the verifiers use. The rules that decide which event wins are in
:mod:`polystream.domain.catalog_rules`.

Event times are kept twice in a document: as a BSON date at millisecond precision (for people
and queries) and, where a rule compares them, as ``event_time_us`` with the microseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from polystream.domain.errors import DomainError
from polystream.domain.events import (
    AssetKind,
    AssetUploaded,
    Envelope,
    ImageType,
    RelationAdded,
    RelationKind,
    RelationRemoved,
    TitleKind,
    TitleRemoved,
    TitleUpserted,
)

Document = dict[str, Any]
Direction = Literal["out", "in", "both"]

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


class CorruptUpload(DomainError):
    """An upload whose bytes do not match its own ``sha256``/``size_bytes``: it can never be
    stored, whatever the store holds (the stores turn it into ``PermanentStoreError``)."""

    def __init__(self, event_id: UUID, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason


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
# Titles and relations
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


def edge_order(doc: Mapping[str, Any]) -> tuple[float, str, str, str]:
    """Strongest edge first, then by its ends and kind: the order ``related`` answers in."""
    return (-doc["weight"], doc["from_title_id"], doc["to_title_id"], doc["kind"])


# ---------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------


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
        raise CorruptUpload(event.event_id, "data_base64 is not valid base64") from None
    if len(data) != payload.size_bytes:
        raise CorruptUpload(
            event.event_id,
            f"asset {payload.asset_id}: {len(data)} bytes decoded, size_bytes says "
            f"{payload.size_bytes}",
        )
    if hashlib.sha256(data).hexdigest() != payload.sha256:
        raise CorruptUpload(
            event.event_id, f"asset {payload.asset_id}: sha256 does not match the bytes"
        )
    return data


def chunked(data: bytes) -> list[bytes]:
    """An asset's bytes cut into GridFS chunks of :data:`CHUNK_SIZE` (chunk ``n`` at index n)."""
    return [data[start : start + CHUNK_SIZE] for start in range(0, len(data), CHUNK_SIZE)]


def assembled_intact(info: AssetInfo, numbers: list[int], data: bytes) -> bool:
    """Whether chunks numbered ``numbers`` (in read order), joined into ``data``, are the
    whole asset ``info`` describes: GridFS has no atomic write, so a read must check."""
    expected = (info.size_bytes + CHUNK_SIZE - 1) // CHUNK_SIZE
    return (
        numbers == list(range(expected))
        and len(data) == info.size_bytes
        and hashlib.sha256(data).hexdigest() == info.sha256
    )


# ---------------------------------------------------------------------------------------
# Query arguments
# ---------------------------------------------------------------------------------------


def check_direction(direction: str) -> None:
    if direction not in ("out", "in", "both"):
        raise ValueError("direction must be 'out', 'in' or 'both'")


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must not be negative")


__all__ = [
    "CHUNK_SIZE",
    "MAX_PAGE",
    "AssetInfo",
    "CorruptUpload",
    "Direction",
    "Document",
    "Edge",
    "assembled_intact",
    "asset_bytes",
    "asset_file_document",
    "asset_info_from_document",
    "chunked",
    "edge_from_document",
    "relation_document",
    "relation_id",
    "title_document",
    "title_from_document",
    "title_tombstone",
]
