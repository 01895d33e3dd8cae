"""Response bodies of commands and of the event status endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from polystream.domain.events import UserRegistered

SinkState = Literal["pending", "stored", "duplicate", "stale", "rejected", "dead_lettered"]
EventState = Literal["unknown", "pending", "stored", "stale", "rejected", "dead_lettered"]


class SinkStatus(BaseModel):
    """One store's receipt for the event, or ``pending`` while it has none."""

    status: SinkState
    reason: str | None = None
    processed_at: datetime | None = None


class EventStatus(BaseModel):
    """The event's status in every store that should process it."""

    event_id: UUID
    type: str | None = Field(
        description="Known from a receipt or the `type` hint; null when neither exists yet."
    )
    status: EventState = Field(
        description="unknown: no receipt yet and no type hint, so the stores concerned are not "
        "known (the event may still be on its way); pending: some store has no receipt yet; "
        "stored: every store stored it (or had it already); stale: a store kept a newer "
        "version; rejected: a store refused it (see reason); dead_lettered: a store could not "
        "process it."
    )
    sinks: dict[str, SinkStatus] = Field(
        description="Store -> receipt. The audit trail is not listed: it records every event."
    )
    detail: str | None = None


class CommandAccepted(BaseModel):
    """The event was published (acknowledged by every in-sync Kafka replica)."""

    event_id: UUID
    type: str = Field(examples=[UserRegistered.event_type])
    status_url: str = Field(
        description="GET it for the event's status per store.",
        examples=[f"/events/0194a1b2-0000-7000-8000-000000000001?type={UserRegistered.event_type}"],
    )
    resource_id: str | None = Field(
        default=None, description="Id of the created resource (commands that create one only)."
    )


class CommandOutcome(CommandAccepted):
    """Answer of a command sent with `wait`: the stores' receipts."""

    status: EventState
    sinks: dict[str, SinkStatus]
    detail: str | None = None
