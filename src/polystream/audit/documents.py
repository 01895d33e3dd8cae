"""The audit documents: what is indexed for each record the auditor reads, and how writes merge.

Pure functions only (no I/O), shared by every `AuditIndex` implementation and by the worker.
Dead-letter documents are built in `audit.dead_letters`, times and buckets are in
`audit.buckets`, and the read models in `audit.records` (the last two are re-exported here,
where most callers look for them).

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

import copy
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from polystream.audit.buckets import (
    UNDATED,
    bucket_end,
    bucket_for_event,
    bucket_month,
    bucket_of,
    epoch_ms,
    iso,
    parse_iso,
)
from polystream.audit.records import (
    AuditRecord,
    DeadLetterInfo,
    DocKind,
    LineageEntry,
    decode_cursor,
    encode_cursor,
    tokens,
)
from polystream.bus.ports import Record
from polystream.domain.events import (
    REDACTED,
    AnyEvent,
    Receipt,
    ReceiptStatus,
    find_card_data,
    pseudonymise,
)

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

#: What an id found in a payload must look like to be copied to a keyword field.
ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


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


def free_text(*parts: Any) -> str:
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


def extract_ids(payload: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in EXTRACTED_IDS:
        value = payload.get(name)
        if isinstance(value, str) and ID_SHAPE.match(value):
            found[name] = value
    if "title_id" not in found:
        value = payload.get("from_title_id")
        if isinstance(value, str) and ID_SHAPE.match(value):
            found["title_id"] = value
    scope = payload.get("scope")
    if "user_id" not in found and isinstance(scope, str) and scope.startswith("user:"):
        # A per-user flag is about that user: their erasure must reach it too.
        user = scope[5:]
        if ID_SHAPE.match(user):
            found["user_id"] = user
    return found


def lineage_entry(
    status: ReceiptStatus | str, processed_at: datetime, event_type: str | None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "status": str(status),
        "reason": safe_reason(reason),
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
        **extract_ids(payload),
        "payload": payload,
        "text": free_text(payload),
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


def safe_reason(text: str | None, limit: int = 1000) -> str | None:
    """Reasons are meant to hold no field values; this makes sure none that looks like card
    data is ever indexed."""
    if text is None:
        return None
    text = text[:limit]
    return "<withheld: looked like card data>" if find_card_data(text) else text


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


__all__ = [
    "ANONYMISED_AWAY",
    "DOC_FIELDS",
    "EXTRACTED_IDS",
    "ID_SHAPE",
    "PRESERVED",
    "UNDATED",
    "AuditRecord",
    "DeadLetterInfo",
    "DocKind",
    "EventDoc",
    "IndexItem",
    "Lineage",
    "LineageEntry",
    "LineageUpdate",
    "anonymise_fields",
    "anonymised",
    "apply_item",
    "bucket_end",
    "bucket_for_event",
    "bucket_month",
    "bucket_of",
    "coalesce",
    "decode_cursor",
    "encode_cursor",
    "epoch_ms",
    "erasure_key",
    "event_document",
    "extract_ids",
    "free_text",
    "iso",
    "lineage_entry",
    "lineage_rank",
    "lineage_update",
    "merged_lineage",
    "parse_iso",
    "safe_reason",
    "tokens",
]
