"""Times and monthly buckets of the audit documents (pure).

Every stored time is one fixed UTC string format, and every document lives in the bucket of
its event's month (an OpenSearch index or a JSONL file per month), known from the event id
alone so that receipts land next to their event.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

#: Bucket of documents whose time cannot be known from their id (never deleted by retention).
UNDATED: Final = "undated"


def iso(moment: datetime) -> str:
    """One fixed UTC format everywhere, so stored times also compare correctly as strings
    (the lineage merge relies on it)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    # isoformat is C and several times faster than strftime (called a few times per audited
    # record); with a four-digit year the text is the same as strftime's %Y-%m-%dT%H:%M:%S.%fZ.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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


__all__ = [
    "UNDATED",
    "bucket_end",
    "bucket_for_event",
    "bucket_month",
    "bucket_of",
    "epoch_ms",
    "iso",
    "parse_iso",
]
