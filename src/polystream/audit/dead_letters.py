"""The audit document of a dead-letter record: what was refused, by whom and why, never what it
held.

The record's bytes are attacker-controlled and may hold secrets or card data, so the document
keeps only their size, a keyed hash and the *shape* of the JSON (keys and value types, no
values except the envelope's routing fields, each kept only when it has its expected shape).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from polystream.audit.buckets import UNDATED, bucket_of, iso, parse_iso
from polystream.audit.documents import (
    EXTRACTED_IDS,
    ID_SHAPE,
    EventDoc,
    extract_ids,
    free_text,
    safe_reason,
)
from polystream.audit.records import DocKind
from polystream.bus.ports import Record
from polystream.bus.topology import DeadLetterHeader
from polystream.domain.events import find_card_data

_TYPE_SHAPE = re.compile(r"^[a-z]+(?:\.[a-z_]+)+$")
_SOURCE_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")
_TOPIC_SHAPE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_ROUTING: Final = ("event_id", "type", "schema_version", "source")


def _header(record: Record, name: DeadLetterHeader, limit: int = 1000) -> str | None:
    raw = record.headers.get(name.value)
    if raw is None:
        return None
    return safe_reason(raw.decode("utf-8", errors="replace"), limit)


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
        ids = extract_ids(payload)
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
            and offset is not None and consumer is not None and ID_SHAPE.match(consumer)):
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
        "text": free_text(info["reason"], info["detail"], event_type, consumer, topic),
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


__all__ = ["dead_letter_document", "minimal_dead_letter_document", "shape"]
