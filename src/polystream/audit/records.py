"""The audit documents as readers see them (the API, the CLI, the observatory), and the
helpers every index shares to answer a search: word tokens and page cursors."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_WORD = re.compile(r"\w+")


class DocKind(StrEnum):
    EVENT = "event"
    DEAD_LETTER = "dead_letter"


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


__all__ = [
    "AuditRecord",
    "DeadLetterInfo",
    "DocKind",
    "LineageEntry",
    "decode_cursor",
    "encode_cursor",
    "tokens",
]
