"""The audit documents: what is indexed for each record the auditor reads, and how writes merge.

Pure functions only (no I/O), shared by every `AuditIndex` implementation and by the worker.

One document per event, ``_id`` = event id::

    doc_id, kind="event", event_id, type, schema_version, occurred_at, key, source, trace_id,
    user_id, title_id, subscription_id, payment_id, session_id,   # extracted, for filters
    topic, partition, offset,                                      # where the auditor read it
    indexed_at,                                                    # first time it was indexed
    payload,      # redacted + pseudonymised, stored but not indexed (no mapping explosion)
    text,         # the payload's readable words, for free-text search
    lineage: {<sink>: {status, reason, processed_at, event_type}},  # from the receipts
    erased        # true once the user was erased (payload and ids gone)

One document per dead-letter record, ``_id`` = ``dl:<topic>:<partition>:<offset>:<consumer>``
of the *original* record (a sink that dead-letters the same record twice after a crash still
makes one document), ``kind="dead_letter"``, with the reason headers under ``dead_letter`` and
never the record's bytes: only their size, a keyed hash and the *shape* of the JSON (keys and
value types, no values except the envelope's routing fields).

Privacy rules (also in docs/audit.md):

* secrets (schema ``x-sensitive`` fields and secret-looking keys anywhere) are replaced by
  ``"***"`` (`events.redact`); card data cannot be in a valid event, and dead letters keep no
  values;
* personal fields (schema ``x-personal``: email, names, device ids, IPs, user agents, reviews,
  birth year) become ``"hmac:<32 hex>"``, an HMAC-SHA256 keyed by ``api.audit_secret``
  (`events.pseudonymise`): the same person keeps the same pseudonym, and destroying the secret
  anonymises the whole trail at once;
* a ``user.erased`` event anonymises every document of the user (`anonymised`), and the
  erasure is remembered so a replay cannot bring the data back.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from polystream.bus.ports import Record
from polystream.bus.topology import DeadLetterHeader
from polystream.domain.events import (
    REDACTED,
    AnyEvent,
    Receipt,
    ReceiptStatus,
    find_card_data,
    pseudonymise,
)


class DocKind(StrEnum):
    EVENT = "event"
    DEAD_LETTER = "dead_letter"


#: Bucket of documents whose time cannot be known from their id (never deleted by retention).
UNDATED: Final = "undated"

#: Payload fields copied to top-level keyword fields, so filters never look inside the payload.
EXTRACTED_IDS: Final = ("user_id", "title_id", "subscription_id", "payment_id", "session_id")

#: What anonymisation removes: everything that can point back at the person.
ANONYMISED_AWAY: Final = frozenset(
    {"payload", "text", "key", "user_id", "subscription_id", "payment_id", "session_id"}
)

#: Every top-level field a document may have. The OpenSearch mapping is strict about the same
#: set (an unknown field is a bug to refuse, not a field to add), and so are the other indexes.
DOC_FIELDS: Final = frozenset(
    {
        "doc_id", "kind", "event_id", "type", "schema_version", "occurred_at", "key", "source",
        "trace_id", *EXTRACTED_IDS, "topic", "partition", "offset", "indexed_at", "payload",
        "text", "lineage", "dead_letter", "erased",
    }
)

#: Top-level fields an `EventDoc` never replaces: they belong to the receipts and to the first
#: indexing, so a replay leaves them (and thus the whole document) unchanged.
PRESERVED: Final = frozenset({"lineage", "indexed_at"})

#: Strings longer than this are not worth auditing (inline images): kept as a placeholder.
MAX_AUDITED_STRING: Final = 4096
#: Bound of the free-text field, so a big catalog snapshot stays a small document.
MAX_TEXT_CHARS: Final = 16_384

_ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TYPE_SHAPE = re.compile(r"^[a-z]+(?:\.[a-z_]+)+$")
_SOURCE_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")
_TOPIC_SHAPE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_WORD = re.compile(r"\w+")
_ROUTING: Final = ("event_id", "type", "schema_version", "source")


# ---------------------------------------------------------------------------------------
# time and buckets
# ---------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """One fixed UTC format everywhere, so stored times also compare correctly as strings
    (the lineage merge relies on it)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    # Integer arithmetic: float timestamps lose the last microsecond digits.
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def bucket_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}.{moment.month:02d}"


def bucket_for_event(event_id: UUID | str) -> str:
    """The month an event's documents live in, from its id alone.

    Receipts carry only the event id, and must land in the same index as the event (``_id``
    is unique per index, not per alias). UUIDv7 ids carry their creation time, so the bucket
    is that month: stable across replays, known to receipts and events alike. Ids without a
    time (not produced by this system) go to the undated bucket.
    """
    try:
        uid = event_id if isinstance(event_id, UUID) else UUID(str(event_id))
    except ValueError:
        return UNDATED
    if uid.version != 7:
        return UNDATED
    return bucket_of(datetime.fromtimestamp((uid.int >> 80) / 1000, UTC))


def bucket_month(bucket: str) -> tuple[int, int] | None:
    """(year, month) of a bucket name, None for the undated one or anything else."""
    match = re.fullmatch(r"([0-9]{4})\.([0-9]{2})", bucket)
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    return (year, month) if 1 <= month <= 12 else None


def bucket_end(bucket: str) -> datetime | None:
    """The first instant after the bucket's month."""
    ym = bucket_month(bucket)
    if ym is None:
        return None
    year, month = ym
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# write items
# ---------------------------------------------------------------------------------------


Lineage = Mapping[str, Mapping[str, Any]]  # sink -> {status, reason, processed_at, event_type}


@dataclass(frozen=True, slots=True)
class EventDoc:
    """Set a document's top-level fields (all of them but `PRESERVED`) and merge ``lineage``
    entries (the indexer's own, and receipts that arrived in the same batch)."""

    doc_id: str
    bucket: str
    fields: Mapping[str, Any]
    lineage: Lineage = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        value = self.fields.get("user_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class LineageUpdate:
    """Merge receipts into the lineage of event ``doc_id`` (creating a document holding only
    the lineage if the event has not been indexed yet)."""

    doc_id: str
    bucket: str
    lineage: Lineage


IndexItem = EventDoc | LineageUpdate


# ---------------------------------------------------------------------------------------
# building documents
# ---------------------------------------------------------------------------------------


def _shrink(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_AUDITED_STRING:
            return f"<omitted: {len(value)} characters>"
        return value
    if isinstance(value, dict):
        return {key: _shrink(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shrink(item) for item in value]
    return value


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _text(*parts: Any) -> str:
    # Parts are joined by newlines, not spaces: short numbers of separate fields (a last4, a
    # position) must never read as one long card-like number to a scan of the index.
    words: list[str] = []
    size = 0
    for part in parts:
        for text in _strings(part):
            # Pseudonyms and redaction marks are not words anyone searches for.
            if text == REDACTED or text.startswith(("hmac:", "<omitted")):
                continue
            words.append(text)
            size += len(text) + 1
            if size > MAX_TEXT_CHARS:
                return "\n".join(words)[:MAX_TEXT_CHARS]
    return "\n".join(words)


def _extract_ids(payload: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in EXTRACTED_IDS:
        value = payload.get(name)
        if isinstance(value, str) and _ID_SHAPE.match(value):
            found[name] = value
    if "title_id" not in found:
        value = payload.get("from_title_id")
        if isinstance(value, str) and _ID_SHAPE.match(value):
            found["title_id"] = value
    scope = payload.get("scope")
    if "user_id" not in found and isinstance(scope, str) and scope.startswith("user:"):
        # A per-user flag is about that user: their erasure must reach it too.
        user = scope[5:]
        if _ID_SHAPE.match(user):
            found["user_id"] = user
    return found


def lineage_entry(
    status: ReceiptStatus | str, processed_at: datetime, event_type: str | None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "status": str(status),
        "reason": _safe_reason(reason),
        "processed_at": iso(processed_at),
        "event_type": event_type,
    }


def event_document(
    env: AnyEvent,
    record: Record | None,
    *,
    secret: bytes,
    sink: str | None = "audit",
    now: datetime | None = None,
) -> EventDoc:
    """The document of one valid event; with ``sink``, the indexer's own lineage entry."""
    data = pseudonymise(env, secret=secret)
    payload = _shrink(data.get("payload") or {})
    event_id = str(env.event_id)
    fields: dict[str, Any] = {
        "doc_id": event_id,
        "kind": DocKind.EVENT.value,
        "event_id": event_id,
        "type": env.type,
        "schema_version": env.schema_version,
        "occurred_at": iso(env.occurred_at),
        "key": env.key,
        "source": env.source,
        "trace_id": env.trace_id,
        **_extract_ids(payload),
        "payload": payload,
        "text": _text(payload),
    }
    if record is not None:
        fields.update(topic=record.topic, partition=record.partition, offset=record.offset)
    lineage = {}
    if sink is not None:
        lineage[sink] = lineage_entry(ReceiptStatus.STORED, now or datetime.now(UTC), env.type)
    return EventDoc(event_id, bucket_for_event(env.event_id), fields, lineage)


def lineage_update(receipt: Receipt) -> LineageUpdate:
    event_id = str(receipt.event_id)
    entry = lineage_entry(receipt.status, receipt.processed_at, receipt.event_type,
                          receipt.reason)
    return LineageUpdate(event_id, bucket_for_event(receipt.event_id), {receipt.sink.value: entry})


def _safe_reason(text: str | None, limit: int = 1000) -> str | None:
    """Reasons are meant to hold no field values; this makes sure none that looks like card
    data is ever indexed."""
    if text is None:
        return None
    text = text[:limit]
    return "<withheld: looked like card data>" if find_card_data(text) else text


def _header(record: Record, name: DeadLetterHeader, limit: int = 1000) -> str | None:
    raw = record.headers.get(name.value)
    if raw is None:
        return None
    return _safe_reason(raw.decode("utf-8", errors="replace"), limit)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) < 19 else None


def shape(value: Any, depth: int = 0) -> Any:
    """The structure of a JSON value without its values: keys kept (unless they look like card
    data), scalars replaced by their type (and string length). Bounded in depth and width,
    since dead letters are attacker-controlled input."""
    if isinstance(value, dict):
        if depth >= 5:
            return "<object>"
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= 50:
                out["<more keys>"] = len(value) - 50
                break
            name = str(key)[:64]
            if find_card_data({name: None}):
                # A card field's name ("cvv") or a key that is itself a card number: neither
                # may appear in the audit (the reason header already says what was wrong).
                name = f"<key {index}>"
            out[name] = shape(item, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= 5:
            return "<array>"
        items = [shape(item, depth + 1) for item in value[:5]]
        if len(value) > 5:
            items.append(f"<{len(value) - 5} more items>")
        return items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "<number>"
    return f"<string:{len(str(value))}>"


def _envelope_hints(data: Mapping[str, Any]) -> dict[str, Any]:
    """Routing fields of a would-be event, kept only when they have their expected shape (so
    they cannot smuggle anything)."""
    hints: dict[str, Any] = {}
    value = data.get("event_id")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            hints["event_id"] = str(UUID(value))
    value = data.get("type")
    if isinstance(value, str) and len(value) <= 64 and _TYPE_SHAPE.match(value):
        hints["type"] = value
    value = data.get("schema_version")
    if type(value) is int and 0 <= value < 1_000_000:
        hints["schema_version"] = value
    value = data.get("source")
    if isinstance(value, str) and _SOURCE_SHAPE.match(value):
        hints["source"] = value
    value = data.get("occurred_at")
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = parse_iso(value)
            hints["event_occurred_at"] = iso(moment)
        except ValueError:
            pass
    payload = data.get("payload")
    if isinstance(payload, dict):
        ids = _extract_ids(payload)
        hints.update({name: ids[name] for name in EXTRACTED_IDS if name in ids
                      and not find_card_data(ids[name])})
    return hints


def dead_letter_document(record: Record, *, secret: bytes) -> EventDoc:
    """The document of one record of the dead-letter topic."""
    topic = _header(record, DeadLetterHeader.TOPIC, 249)
    partition = _int_or_none(_header(record, DeadLetterHeader.PARTITION, 20))
    offset = _int_or_none(_header(record, DeadLetterHeader.OFFSET, 20))
    consumer = _header(record, DeadLetterHeader.CONSUMER, 64)
    if (topic is not None and _TOPIC_SHAPE.match(topic) and partition is not None
            and offset is not None and consumer is not None and _ID_SHAPE.match(consumer)):
        doc_id = f"dl:{topic}:{partition}:{offset}:{consumer}"
    else:
        # No (usable) origin headers: the dead-letter record's own position is stable too.
        doc_id = f"dl:{record.topic}:{record.partition}:{record.offset}"
    value = record.value or b""
    hints: dict[str, Any] = {}
    preview: Any = None
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        hints = _envelope_hints(data)
        preview = shape(data)
        # Routing fields that passed their shape check are shown as they are: they say what
        # the record was meant to be and cannot carry anything else.
        preview.update({name: hints[name] for name in _ROUTING if name in hints})
        if "event_occurred_at" in hints and "occurred_at" in preview:
            preview["occurred_at"] = hints["event_occurred_at"]
    elif data is not None:
        preview = shape(data)
    event_type = _header(record, DeadLetterHeader.EVENT_TYPE, 64) or hints.get("type")
    info = {
        "reason": _header(record, DeadLetterHeader.REASON, 64),
        "detail": _header(record, DeadLetterHeader.DETAIL),
        "consumer": consumer,
        "original_topic": topic,
        "original_partition": partition,
        "original_offset": offset,
        "event_type": event_type,
        "event_occurred_at": hints.get("event_occurred_at"),
        "size_bytes": len(value),
        # Keyed: a plain hash of a short record ({"password": "..."}) could be brute-forced.
        "hmac_sha256": hmac.new(secret, value, hashlib.sha256).hexdigest(),
        "preview": preview,
    }
    occurred = (datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
                if record.timestamp_ms > 0 else None)
    fields: dict[str, Any] = {
        "doc_id": doc_id,
        "kind": DocKind.DEAD_LETTER.value,
        "type": event_type,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "dead_letter": info,
        "text": _text(info["reason"], info["detail"], event_type, consumer, topic),
    }
    if occurred is not None:
        fields["occurred_at"] = iso(occurred)
    for name in ("event_id", "schema_version", "source", *EXTRACTED_IDS):
        if name in hints:
            fields[name] = hints[name]
    fields = {name: value for name, value in fields.items() if value is not None}
    bucket = bucket_of(occurred) if occurred is not None else UNDATED
    return EventDoc(doc_id, bucket, fields)


def minimal_dead_letter_document(doc: EventDoc) -> EventDoc:
    """A dead-letter document cut down to what any mapping accepts, for when the index refused
    the full one: dead letters cannot be dead-lettered again, and must not be lost."""
    info = doc.fields.get("dead_letter") or {}
    keep = {"doc_id", "kind", "topic", "partition", "offset", "occurred_at"}
    fields = {name: value for name, value in doc.fields.items() if name in keep}
    fields["dead_letter"] = {
        name: info.get(name) for name in ("reason", "size_bytes", "hmac_sha256")
    }
    return EventDoc(doc.doc_id, doc.bucket, fields)


def anonymised(doc: EventDoc) -> EventDoc:
    """The document of an erased user: what happened and when stays (type, times, lineage),
    who and what about them goes."""
    fields = {name: value for name, value in doc.fields.items() if name not in ANONYMISED_AWAY}
    if isinstance(fields.get("dead_letter"), dict):
        fields["dead_letter"] = {**fields["dead_letter"], "preview": None}
    fields["erased"] = True
    return EventDoc(doc.doc_id, doc.bucket, fields, doc.lineage)


def anonymise_fields(source: Mapping[str, Any]) -> dict[str, Any]:
    """`anonymised` for a stored document (lineage and first-indexing time kept)."""
    out = {name: value for name, value in source.items() if name not in ANONYMISED_AWAY}
    if isinstance(out.get("dead_letter"), dict):
        out["dead_letter"] = {**out["dead_letter"], "preview": None}
    out["erased"] = True
    return out


def erasure_key(user_id: str) -> str:
    """Id of an erasure record. Hashed, so the list of erased users is not a list of ids."""
    return hashlib.sha256(f"polystream-erasure:{user_id}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# merging writes (the Python twin of the Painless script in opensearch.py)
# ---------------------------------------------------------------------------------------


def lineage_rank(entry: Mapping[str, Any]) -> str:
    """Lower wins: real outcomes before duplicates, then the earliest, then a fixed order."""
    duplicate = "1" if entry.get("status") == ReceiptStatus.DUPLICATE.value else "0"
    return (f"{duplicate}|{entry.get('processed_at')}|{entry.get('status')}|"
            f"{entry.get('reason') or ''}")


def _merge_lineage(doc: dict[str, Any], sink: str, entry: Mapping[str, Any]) -> bool:
    lineage = doc.get("lineage")
    if not isinstance(lineage, dict):
        lineage = doc["lineage"] = {}
    current = lineage.get(sink)
    if current is not None and lineage_rank(entry) >= lineage_rank(current):
        return False
    lineage[sink] = dict(entry)
    return True


def apply_item(current: Mapping[str, Any] | None, item: IndexItem,
               now: datetime) -> dict[str, Any] | None:
    """The document after ``item``, or None when it does not change (a no-op)."""
    doc = copy.deepcopy(dict(current)) if current is not None else {}
    changed = False
    if isinstance(item, EventDoc):
        fields = item.fields
        if doc.get("erased") is True and fields.get("erased") is not True:
            return None
        for name, value in fields.items():
            if name in PRESERVED:
                continue
            if name not in doc or doc[name] != value:
                doc[name] = copy.deepcopy(value)
                changed = True
        for name in [name for name in doc if name not in PRESERVED and name not in fields]:
            del doc[name]
            changed = True
        if doc.get("indexed_at") is None:
            doc["indexed_at"] = iso(now)
            changed = True
    elif doc.get("doc_id") is None:
        doc["doc_id"] = item.doc_id
        doc["event_id"] = item.doc_id
        changed = True
    for sink, entry in item.lineage.items():
        changed = _merge_lineage(doc, sink, entry) or changed
    return doc if changed else None


def merged_lineage(*parts: Lineage) -> dict[str, Mapping[str, Any]]:
    """The lineages merged entry by entry with the same rule as the indexes."""
    out: dict[str, Mapping[str, Any]] = {}
    for part in parts:
        for sink, entry in part.items():
            current = out.get(sink)
            if current is None or lineage_rank(entry) < lineage_rank(current):
                out[sink] = entry
    return out


def coalesce(first: IndexItem, second: IndexItem) -> IndexItem:
    """One item with the effect of ``first`` then ``second`` on the same document.

    The worker sends each document once per bulk: an update of a document written earlier in
    the same bulk makes OpenSearch refresh the shard for its realtime read (measured: an
    event and its receipt in one bulk, unmerged, cut throughput by half).
    """
    if (first.bucket, first.doc_id) != (second.bucket, second.doc_id):
        raise ValueError("coalesce needs two items of one document")
    lineage = merged_lineage(first.lineage, second.lineage)
    if isinstance(second, EventDoc):
        if isinstance(first, EventDoc) and first.fields.get("erased") is True and (
                second.fields.get("erased") is not True):
            return EventDoc(first.doc_id, first.bucket, first.fields, lineage)
        return EventDoc(second.doc_id, second.bucket, second.fields, lineage)
    if isinstance(first, EventDoc):
        return EventDoc(first.doc_id, first.bucket, first.fields, lineage)
    return LineageUpdate(first.doc_id, first.bucket, lineage)


# ---------------------------------------------------------------------------------------
# reading documents
# ---------------------------------------------------------------------------------------


class LineageEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    reason: str | None = None
    processed_at: datetime
    event_type: str | None = None


class DeadLetterInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str | None = None
    detail: str | None = None
    consumer: str | None = None
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    event_type: str | None = None
    event_occurred_at: datetime | None = None
    size_bytes: int | None = None
    hmac_sha256: str | None = None
    preview: Any = None


class AuditRecord(BaseModel):
    """One audit document as readers see it (the free-text field is left out)."""

    model_config = ConfigDict(extra="ignore")

    doc_id: str
    kind: DocKind | None = Field(
        None, description="None while only receipts of the event have been indexed.")
    event_id: str | None = None
    type: str | None = None
    schema_version: int | None = None
    occurred_at: datetime | None = None
    key: str | None = None
    source: str | None = None
    trace_id: str | None = None
    user_id: str | None = None
    title_id: str | None = None
    subscription_id: str | None = None
    payment_id: str | None = None
    session_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    indexed_at: datetime | None = None
    payload: dict[str, Any] | None = None
    lineage: dict[str, LineageEntry] = Field(default_factory=dict)
    dead_letter: DeadLetterInfo | None = None
    erased: bool = False
    dead_letters: list[AuditRecord] = Field(
        default_factory=list, description="Dead letters naming this event (get only).")


def tokens(text: str) -> set[str]:
    """Words as the in-process indexes compare them (close to OpenSearch's standard analyzer
    for ordinary words)."""
    return {word.lower() for word in _WORD.findall(text)}


def encode_cursor(sort_key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(sort_key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError for anything `encode_cursor` did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    if (not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int
            or not isinstance(value[1], str)):
        raise ValueError("not a cursor")
    return value[0], value[1]
