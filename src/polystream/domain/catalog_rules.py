"""What a catalog event does to the catalog: the rules every catalog store follows (pure).

The stores read the guard state of the keys a batch touches, hand it to :func:`plan_batch`,
and write the plan; so the in-memory store and MongoDB cannot drift apart. The rules, per key:

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
  event's ``sha256`` or ``size_bytes`` can never be stored: :class:`CorruptUpload`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from polystream.domain.catalog import (
    Document,
    asset_bytes,
    asset_file_document,
    relation_document,
    relation_id,
    title_document,
    title_tombstone,
    to_micros,
)
from polystream.domain.events import (
    AnyEvent,
    AssetUploaded,
    ReceiptStatus,
    RelationAdded,
    RelationRemoved,
    Sink,
    TitleRemoved,
    TitleUpserted,
    typed_event,
)
from polystream.domain.outcomes import DUPLICATE, STALE, STORED, Outcome, rejected


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


def asset_guard(doc: Mapping[str, Any]) -> str:
    """What the immutability rule needs of a stored file: the sha256 of its bytes."""
    return str(doc["metadata"]["sha256"])


@dataclass(slots=True)
class CatalogState:
    """The guard state of the keys a batch touches. Absent key = never stored."""

    titles: dict[str, TitleGuard] = field(default_factory=dict)
    relations: dict[str, RelationGuard] = field(default_factory=dict)
    #: asset_id -> sha256 of the stored bytes.
    assets: dict[str, str] = field(default_factory=dict)


def stored_state(
    titles: Iterable[Mapping[str, Any]] = (),
    relations: Iterable[Mapping[str, Any]] = (),
    asset_files: Iterable[Mapping[str, Any]] = (),
) -> CatalogState:
    """The guard state of the stored documents a batch touches, keyed by their ``_id``: each
    store only finds the documents, so what a guard reads of them is said once, here."""
    return CatalogState(
        titles={doc["_id"]: title_guard(doc) for doc in titles},
        relations={doc["_id"]: relation_guard(doc) for doc in relations},
        assets={doc["_id"]: asset_guard(doc) for doc in asset_files},
    )


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


def title_outcome(current: TitleGuard | None, version: int, removal: bool) -> Outcome:
    if current is None or version > current.version:
        return STORED
    if version < current.version:
        return STALE
    if current.removed:
        if removal:
            return DUPLICATE
        return Outcome(ReceiptStatus.STALE, f"title was removed at version {version}")
    return STORED if removal else DUPLICATE


def relation_outcome(current: RelationGuard | None, time_us: int, event_id: str) -> Outcome:
    if current is None:
        return STORED
    if current.event_id == event_id:
        return DUPLICATE
    if (time_us, event_id) > (current.event_time_us, current.event_id or ""):
        return STORED
    return STALE


def asset_outcome(stored_sha: str | None, asset_id: str, sha256: str) -> Outcome:
    if stored_sha is None:
        return STORED
    if stored_sha == sha256:
        return DUPLICATE
    return rejected(
        f"asset {asset_id} already holds other bytes; "
        "assets are immutable, upload new bytes under a new asset_id"
    )


def plan_batch(events: Sequence[AnyEvent], state: CatalogState) -> CatalogPlan:
    """Fold ``events`` in order over ``state`` (which is not modified).

    Every upload is checked before anything else, so a corrupt one raises
    :class:`CorruptUpload` before any write of the batch happens.
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
                outcome = title_outcome(titles.get(title.title_id), title.version, removal)
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
                outcome = relation_outcome(relations.get(rid), time_us, event_id)
                if outcome.status is ReceiptStatus.STORED:
                    removal = isinstance(edge, RelationRemoved)
                    relations[rid] = RelationGuard(time_us, event_id, removal)
                    plan.relations[rid] = relation_document(typed_event(event, edge))
            case AssetUploaded() as asset:
                outcome = asset_outcome(assets.get(asset.asset_id), asset.asset_id, asset.sha256)
                if outcome.status is ReceiptStatus.STORED:
                    assets[asset.asset_id] = asset.sha256
                    file = asset_file_document(typed_event(event, asset))
                    plan.assets[asset.asset_id] = NewAsset(file, decoded[index])
            case _:
                outcome = rejected(
                    f"{event.type} is not a catalog event (sink {Sink.MONGO.value})"
                )
        plan.outcomes.append(outcome)
    return plan


__all__ = [
    "CatalogPlan",
    "CatalogState",
    "Key",
    "NewAsset",
    "RelationGuard",
    "TitleGuard",
    "asset_guard",
    "key_of",
    "keys_of",
    "plan_batch",
    "relation_guard",
    "stored_state",
    "title_guard",
]
