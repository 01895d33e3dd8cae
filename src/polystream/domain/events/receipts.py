"""Receipts: what each sink did with an event, for read-your-writes and the audit's lineage."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import StringConstraints

from polystream.domain.events.payload import ClosedModel
from polystream.domain.events.registry import Sink
from polystream.domain.events.types import UtcDatetime


class ReceiptStatus(StrEnum):
    """What a sink did with one event."""

    STORED = "stored"
    DUPLICATE = "duplicate"  #: already applied (ledger / marker / version says so)
    STALE = "stale"  #: a newer version or event time was already applied
    REJECTED = "rejected"  #: valid event the store refused (e.g. email taken)
    DEAD_LETTERED = "dead_lettered"


class Receipt(ClosedModel):
    """A sink's processing receipt, published on ``polystream.receipts`` (keyed by event id)."""

    event_id: UUID
    event_type: Annotated[str, StringConstraints(max_length=64)]
    sink: Sink
    status: ReceiptStatus
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None
    processed_at: UtcDatetime


__all__ = ["Receipt", "ReceiptStatus"]
