"""The shapes the dashboard receives (JSON over SSE): one `Snapshot` per tick."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StoreStatus(BaseModel):
    name: str
    #: What the store holds in this platform ("accounts", "catalog", ...).
    role: str
    healthy: bool
    #: "ok", or why the probe failed (never a secret: exception class and message).
    detail: str = "ok"
    sizes: dict[str, int] = Field(default_factory=dict)


class GroupStatus(BaseModel):
    sink: str
    group: str
    #: Records committed by the group, all partitions of its topics together.
    consumed: int
    lag: int
    #: "topic/partition" -> records not committed yet.
    partitions: dict[str, int] = Field(default_factory=dict)


class DeadLetterView(BaseModel):
    doc_id: str
    event_id: str | None = None
    reason: str | None = None
    consumer: str | None = None
    event_type: str | None = None
    at: datetime | None = None


class Ranked(BaseModel):
    title_id: str
    title: str
    score: float
    #: Asset id of the title's poster in the catalogue (GridFS), if it has one.
    poster: str | None = None


class RecentEvent(BaseModel):
    event_id: str
    type: str | None = None
    occurred_at: datetime | None = None


class Snapshot(BaseModel):
    #: Unix time of the probe (wall clock of the observing process).
    taken_at: float
    #: Topic -> records ever appended (sum of the partitions' end offsets).
    produced: dict[str, int]
    groups: list[GroupStatus]
    dead_letters: int
    latest_dead_letters: list[DeadLetterView]
    stores: list[StoreStatus]
    top_rated: list[Ranked]
    trending: list[Ranked]
    most_watched: list[Ranked]
    active_streams: int
    recent_events: list[RecentEvent]
    #: The platform's notion of "now" for the live rankings (the simulated clock in a demo).
    now: datetime


class LineageStep(BaseModel):
    store: str
    #: "stored", "duplicate", "rejected", ..., "pending" (a consumer that has not reported),
    #: or "not a consumer" (the store does not take this event type).
    status: str
    reason: str | None = None
    processed_at: datetime | None = None


class LineageView(BaseModel):
    event_id: str
    type: str | None = None
    occurred_at: datetime | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    steps: list[LineageStep]
    dead_letters: list[DeadLetterView] = Field(default_factory=list)


class Frame(BaseModel):
    """A snapshot with what changed since the previous one."""

    snapshot: Snapshot
    #: Topic -> records appended per second.
    produced_rate: dict[str, float]
    #: Sink -> records committed per second.
    consumed_rate: dict[str, float]
    #: Sinks whose group has lag but has committed nothing for a while.
    stalled: list[str]
