"""One probe of the whole platform (`Observatory.snapshot`), an event's lineage, a search."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

from polystream.audit.documents import AuditRecord, DocKind
from polystream.audit.ports import AuditIndex
from polystream.bus.topology import Topic, topic_of, topics_for
from polystream.domain.events import EVENT_TYPES, Sink
from polystream.observe.model import (
    DeadLetterView,
    GroupStatus,
    LineageStep,
    LineageView,
    Ranked,
    RecentEvent,
    Snapshot,
    StoreStatus,
)
from polystream.observe.ports import BusProbe, CatalogReader, LiveReader, StoreProbe, probe

#: How many entries each ranking shows.
TOP_N = 10
#: The stores a lineage lists, in the order an operator reads them; the audit index last.
T = TypeVar("T")
LINEAGE_STORES: tuple[Sink, ...] = (Sink.POSTGRES, Sink.MONGO, Sink.REDIS, Sink.AUDIT)


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Observatory:
    bus: BusProbe
    #: Sink -> its consumer group in this deployment.
    groups: dict[Sink, str]
    stores: Sequence[StoreProbe]
    live: LiveReader
    catalog: CatalogReader
    audit: AuditIndex
    #: "Now" for the live rankings: the wall clock, or the simulated clock of a demo.
    clock: Callable[[], datetime] = _wall_now
    #: Store sizes, dead letters and the latest events are re-read at most this often: a
    #: count over a big table or index each second would load the stores it watches.
    slow_every_s: float = 5.0

    def __post_init__(self) -> None:
        self._cache: dict[str, tuple[float, Any]] = {}

    def _every(self, name: str, read: Callable[[], T]) -> T:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.slow_every_s:
            return cast(T, hit[1])
        value = read()
        self._cache[name] = (now, value)
        return value

    def snapshot(self) -> Snapshot:
        now = self.clock()
        taken_at = time.time()
        ends = self.bus.end_offsets([t.value for t in Topic])
        produced = {topic: sum(parts.values()) for topic, parts in ends.items()}
        groups = [self._group(sink, group, ends) for sink, group in self.groups.items()]
        dead = produced.get(Topic.DEADLETTER.value, 0)
        return Snapshot(
            taken_at=taken_at,
            produced=produced,
            groups=groups,
            dead_letters=dead,
            latest_dead_letters=self._every("dead", self._latest_dead_letters)
            if dead else [],
            stores=self._every("stores", self._stores),
            top_rated=self._ranked(self._safe(lambda: self.live.top_rated(TOP_N))),
            trending=self._ranked(self._safe(lambda: self.live.trending(TOP_N, now=now))),
            most_watched=self._ranked(self._safe(
                lambda: self.live.most_watched(now.date(), TOP_N))),
            active_streams=self._safe_int(lambda: self.live.active_streams_total(now)),
            recent_events=self._every("recent", self._recent),
            now=now,
        )

    def _group(self, sink: Sink, group: str, ends: dict[str, dict[int, int]]) -> GroupStatus:
        topics = [t.value for t in topics_for(sink)]
        lag = self.bus.group_lag(group, topics)
        total_end = sum(sum(ends.get(t, {}).values()) for t in topics)
        total_lag = sum(lag.values())
        return GroupStatus(
            sink=sink.value, group=group, consumed=max(0, total_end - total_lag), lag=total_lag,
            partitions={f"{t}/{p}": n for (t, p), n in sorted(lag.items())})

    def _stores(self) -> list[StoreStatus]:
        return [probe(store) for store in self.stores]

    @staticmethod
    def _safe(read: Callable[[], Sequence[tuple[str, float]]]) -> list[tuple[str, float]]:
        # A store being down shows in its health card; the rankings just go empty meanwhile.
        try:
            return list(read())
        except Exception:
            return []

    @staticmethod
    def _safe_int(read: Callable[[], int]) -> int:
        try:
            return read()
        except Exception:
            return 0

    def _ranked(self, rows: list[tuple[str, float]]) -> list[Ranked]:
        out = []
        for title_id, score in rows:
            name, poster = self._every(f"title:{title_id}", partial(self._title, title_id))
            out.append(Ranked(title_id=title_id, title=name, score=round(float(score), 3),
                              poster=poster))
        return out

    def _title(self, title_id: str) -> tuple[str, str | None]:
        try:
            doc = self.catalog.get_title(title_id) or {}
            poster = next((a.asset_id for a in self.catalog.list_assets(title_id)
                           if a.kind == "poster"), None)
        except Exception:
            return title_id, None
        return str(doc.get("title") or title_id), poster

    def _latest_dead_letters(self) -> list[DeadLetterView]:
        try:
            page = self.audit.search(kind=DocKind.DEAD_LETTER, size=5)
        except Exception:
            return []
        return [_dead_view(r) for r in page.items]

    def _recent(self) -> list[RecentEvent]:
        try:
            page = self.audit.search(kind=DocKind.EVENT, size=8)
        except Exception:
            return []
        return [RecentEvent(event_id=r.event_id or r.doc_id, type=r.type,
                            occurred_at=r.occurred_at) for r in page.items]

    def lineage(self, event_id: str) -> LineageView | None:
        """Where the event went: one step per store, whether or not the store takes it."""
        record = self.audit.get(event_id)
        if record is None:
            return None
        consumers = _consumers(record.type)
        steps = []
        for sink in LINEAGE_STORES:
            entry = record.lineage.get(sink.value)
            if entry is not None:
                steps.append(LineageStep(store=sink.value, status=entry.status,
                                         reason=entry.reason, processed_at=entry.processed_at))
            elif consumers is not None and sink not in consumers:
                steps.append(LineageStep(store=sink.value, status="not a consumer"))
            else:
                steps.append(LineageStep(store=sink.value, status="pending"))
        return LineageView(
            event_id=record.event_id or record.doc_id, type=record.type,
            occurred_at=record.occurred_at, topic=record.topic, partition=record.partition,
            offset=record.offset, steps=steps,
            dead_letters=[_dead_view(d) for d in record.dead_letters])

    def search(self, text: str, limit: int = 20) -> list[RecentEvent]:
        page = self.audit.search(text=text, size=limit)
        return [RecentEvent(event_id=r.event_id or r.doc_id, type=r.type,
                            occurred_at=r.occurred_at) for r in page.items]

    def poster(self, asset_id: str) -> tuple[str, bytes] | None:
        found = self.catalog.get_asset(asset_id)
        if found is None:
            return None
        info, data = found
        return str(info.content_type), data


def _consumers(event_type: str | None) -> set[Sink] | None:
    if event_type is None or event_type not in EVENT_TYPES:
        return None
    topic = topic_of(event_type)
    return {sink for sink in Sink if topic in topics_for(sink)}


def _dead_view(record: AuditRecord) -> DeadLetterView:
    info = record.dead_letter
    return DeadLetterView(
        doc_id=record.doc_id, event_id=record.event_id,
        reason=info.reason if info else None, consumer=info.consumer if info else None,
        event_type=(info.event_type if info else None) or record.type,
        at=record.indexed_at or record.occurred_at)
