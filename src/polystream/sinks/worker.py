"""The sink worker: the one loop every S2 sink runs (poll, decode, apply, receipts, commit).

Delivery semantics (DESIGN.md §4) live here, once, for every store:

* Offsets are committed only after the store has made the batch durable, the dead letters and
  receipts have been acknowledged by Kafka. A crash anywhere before that means the batch is
  delivered again; the stores' idempotency turns that into "applied exactly once".
* A transient store error is retried with backoff; while it persists the worker rewinds to the
  committed offsets and tries again (lag grows, nothing is skipped).
* Records that are not valid events go to the dead-letter topic with the reason, once: only the
  topic's *primary* sink dead-letters (several sinks read each topic); the others count them.
  A valid event that a store can never apply (PermanentStoreError) is dead-lettered by that
  sink, and the rest of its batch goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from polystream.bus.ports import (
    BulkEventPublisher,
    BusError,
    EventConsumer,
    PublishError,
    Record,
)
from polystream.bus.topology import DeadLetterHeader, Topic, dead_letter_headers, topic_of
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import (
    EVENT_TYPES,
    Envelope,
    Receipt,
    ReceiptStatus,
    Sink,
    decode,
    event_types_for,
)
from polystream.sinks.ports import EventStore, Outcome, PermanentStoreError, TransientStoreError
from polystream.sinks.receipts import ReceiptLog

log = logging.getLogger(__name__)

EVENTS = Counter(
    "polystream_sink_events_total", "Events handled by a sink, by outcome", ["sink", "status"]
)
INVALID = Counter(
    "polystream_sink_invalid_records_total",
    "Records that were not valid events",
    ["sink", "reason", "dead_lettered"],
)
BATCH_SECONDS = Histogram(
    "polystream_sink_batch_seconds",
    "Time to make one batch durable",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEFERRED = Gauge("polystream_sink_deferred_events",
                  "Events waiting for a prerequisite from another topic", ["sink"])
STORE_RETRIES = Counter(
    "polystream_sink_store_retries_total", "Batches retried after a transient store error", ["sink"]
)


def primary_sink(topic: str) -> Sink | None:
    """The sink that dead-letters the invalid records of ``topic``: the first store sink (in
    `Sink` order) that consumes any of its event types."""
    consumers = {s for t in EVENT_TYPES if topic_of(t) == topic for s in EVENT_TYPES[t].consumers}
    for sink in Sink:
        if sink is not Sink.AUDIT and sink in consumers:
            return sink
    return None


@dataclass
class WorkerConfig:
    batch_size: int = 500
    linger_s: float = 0.05
    # Quick retries inside one poll, then rewind and wait longer between attempts.
    retry_attempts: int = 4
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    # How long an event may wait for a prerequisite from another topic (its user's
    # registration, say) before its rejection becomes final.
    defer_max_s: float = 30.0
    defer_retry_s: float = 0.5


@dataclass
class BatchStats:
    records: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    skipped_invalid: int = 0
    ignored: int = 0
    committed: bool = False


@dataclass
class _Deferred:
    record: Record
    event: Envelope[Any]
    since: float


class SinkWorker:
    def __init__(
        self,
        *,
        sink: Sink,
        consumer: EventConsumer,
        store: EventStore,
        publisher: BulkEventPublisher,
        receipts: ReceiptLog | None,
        config: WorkerConfig | None = None,
    ) -> None:
        self.sink = sink
        self.consumer = consumer
        self.store = store
        self.publisher = publisher
        self.receipts = receipts
        self.config = config or WorkerConfig()
        self._types = frozenset(event_types_for(sink))
        self._backoff = self.config.backoff_initial_s
        self.totals = BatchStats()
        # Events waiting for a prerequisite from another topic, oldest first. Their offsets
        # are not committed until they are settled, so a crash only means redelivery.
        self._deferred: list[_Deferred] = []
        # Highest offset processed per partition (committed only below any deferred record).
        self._processed: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._last_offer = 0.0
        self._last_retry = 0.0

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    # ------------------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> None:
        log.info("sink %s: started", self.sink.value)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.consumer.close()
            self.store.close()
            log.info("sink %s: stopped", self.sink.value)

    def step(self) -> BatchStats:
        """Process one batch. Returns what it did; `committed` is False when the batch will be
        delivered again (a transient failure)."""
        records = self.consumer.poll_batch(self.config.batch_size, self.config.linger_s)
        stats = BatchStats(records=len(records))
        self._forget_revoked()
        # With nothing new, deferred events are offered again only now and then.
        if not records and (not self._deferred
                            or time.monotonic() - self._last_offer < self.config.defer_retry_s):
            return stats
        self._last_offer = time.monotonic()
        t0 = time.perf_counter()
        try:
            self._process(records, stats)
        except (TransientStoreError, PublishError) as exc:
            STORE_RETRIES.labels(self.sink.value).inc()
            log.warning("sink %s: batch not durable, will retry after %.1fs: %s",
                        self.sink.value, self._backoff, exc)
            self._rewind()
            time.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self.config.backoff_max_s)
            return stats
        try:
            self._commit()
        except BusError as exc:
            # A rebalance moved partitions under us: the new owner reads the uncommitted
            # records again, and the stores' idempotency absorbs the repeat.
            log.warning("sink %s: commit refused, records will be redelivered: %s",
                        self.sink.value, exc)
            self._rewind()
            return stats
        stats.committed = True
        self._backoff = self.config.backoff_initial_s
        BATCH_SECONDS.labels(self.sink.value).observe(time.perf_counter() - t0)
        self._add_totals(stats)
        return stats

    def _rewind(self) -> None:
        """Everything after the committed offsets comes again, deferred events included (a
        partition we still own would otherwise never be committed: its records were read)."""
        self._deferred.clear()
        self._processed.clear()
        try:
            self.consumer.seek_to_committed()
        except BusError as exc:  # mid-rebalance: the next poll's assignment decides
            log.warning("sink %s: rewind failed: %s", self.sink.value, exc)

    def _forget_revoked(self) -> None:
        """Partitions that moved to another member take their deferred events with them (they
        were never committed, so the new owner reads them again)."""
        if not self._deferred and not self._processed:
            return
        owned = set(self.consumer.assignment())
        self._deferred = [d for d in self._deferred
                          if (d.record.topic, d.record.partition) in owned]
        for tp in [tp for tp in self._processed if tp not in owned]:
            del self._processed[tp]
            self._committed.pop(tp, None)

    def _commit(self) -> None:
        blocked: dict[tuple[str, int], int] = {}
        for d in self._deferred:
            tp = (d.record.topic, d.record.partition)
            blocked[tp] = min(blocked.get(tp, d.record.offset), d.record.offset)
        marks: list[Record] = []
        for tp, high in self._processed.items():
            target = min(high, blocked[tp] - 1) if tp in blocked else high
            if target >= 0 and target > self._committed.get(tp, -1):
                marks.append(Record(tp[0], tp[1], target, None, None))
        if marks:
            self.consumer.commit(marks)
            for rec in marks:
                self._committed[(rec.topic, rec.partition)] = rec.offset

    # ----------------------------------------------------------------------- batch
    def _process(self, records: Sequence[Record], stats: BatchStats) -> None:
        fresh: list[_Deferred] = []
        now = time.monotonic()
        for rec in records:
            tp = (rec.topic, rec.partition)
            self._processed[tp] = max(self._processed.get(tp, -1), rec.offset)
            try:
                env = decode(rec.value if rec.value is not None else b"")
            except InvalidEvent as exc:
                self._invalid(rec, exc, stats)
                continue
            if env.type in self._types:
                fresh.append(_Deferred(rec, env, now))
            else:
                stats.ignored += 1

        # Deferred events are older than anything fresh, so a key with a deferred event keeps
        # its later events back too (Kafka's order is per key). The deferred ones are offered
        # to the store again only every `defer_retry_s`, not with every batch.
        expired = [d for d in self._deferred if now - d.since >= self.config.defer_max_s]
        waiting = [d for d in self._deferred if now - d.since < self.config.defer_max_s]
        self._deferred = []
        settled: list[tuple[_Deferred, Outcome]] = []
        if expired:
            settled += zip(expired, self._apply_with_retries(expired, stats, allow_defer=False),
                           strict=True)
        # What a deferred event waits for comes from another topic: offering it again is
        # worth it when such a topic brought something new, or now and then regardless.
        waiting_topics = {d.record.topic for d in waiting}
        news = any(d.record.topic not in waiting_topics for d in fresh)
        idle_retry = not fresh and now - self._last_retry >= self.config.defer_retry_s
        overdue = now - self._last_retry >= 10 * self.config.defer_retry_s
        if waiting and not (news or idle_retry or overdue):
            held = {(d.record.topic, d.event.key) for d in waiting}
            self._deferred = waiting + [d for d in fresh if (d.record.topic, d.event.key) in held]
            batch = [d for d in fresh if (d.record.topic, d.event.key) not in held]
        else:
            self._last_retry = now
            batch = waiting + fresh
        for item, out in zip(batch, self._apply_with_retries(batch, stats), strict=True):
            if out.retryable:
                self._deferred.append(item)
            else:
                settled.append((item, out))
        self._deferred.sort(key=lambda d: (d.record.topic, d.record.partition, d.record.offset))

        at = datetime.now(UTC)
        receipts = [
            Receipt(event_id=item.event.event_id, event_type=item.event.type, sink=self.sink,
                    status=out.status, reason=out.reason, processed_at=at)
            for item, out in settled
        ]
        for rc in receipts:
            stats.applied[rc.status.value] = stats.applied.get(rc.status.value, 0) + 1
            EVENTS.labels(self.sink.value, rc.status.value).inc()
            self.publisher.publish_fire(Topic.RECEIPTS.value, str(rc.event_id),
                                        rc.model_dump_json().encode())
        # Dead letters and receipts must be acknowledged before the offsets move.
        self.publisher.flush(30.0)
        if self.receipts is not None and receipts:
            self.receipts.record(receipts)
        DEFERRED.labels(self.sink.value).set(len(self._deferred))

    def _apply_with_retries(self, items: list[_Deferred], stats: BatchStats, *,
                            allow_defer: bool = True) -> list[Outcome]:
        """Outcomes aligned with ``items``. An event the store can never apply is
        dead-lettered here and gets a DEAD_LETTERED outcome."""
        outcomes: list[Outcome | None] = [None] * len(items)
        pending = list(range(len(items)))
        delay = self.config.backoff_initial_s
        attempt = 0
        while pending:
            try:
                result = self.store.apply([items[i].event for i in pending],
                                          allow_defer=allow_defer)
            except PermanentStoreError as exc:
                bad = next((i for i in pending if items[i].event.event_id == exc.event_id), None)
                if bad is None:
                    raise TransientStoreError(
                        f"store named an event not in the batch: {exc}") from exc
                if self._first_time(f"dlq:{self.sink.value}:{items[bad].event.event_id}"):
                    self._dead_letter(items[bad].record, "store_rejected", exc.reason,
                                      items[bad].event.type)
                stats.dead_lettered += 1
                outcomes[bad] = Outcome(ReceiptStatus.DEAD_LETTERED, exc.reason)
                pending.remove(bad)
                continue
            except TransientStoreError:
                attempt += 1
                if attempt >= self.config.retry_attempts:
                    raise
                STORE_RETRIES.labels(self.sink.value).inc()
                time.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)
                continue
            for i, out in zip(pending, result, strict=True):
                outcomes[i] = out
            pending = []
        return [out for out in outcomes if out is not None]

    def _invalid(self, rec: Record, exc: InvalidEvent, stats: BatchStats) -> None:
        if primary_sink(rec.topic) is self.sink:
            if self._first_time(f"dlq:{rec.topic}:{rec.partition}:{rec.offset}"):
                self._dead_letter(rec, exc)
            stats.dead_lettered += 1
            INVALID.labels(self.sink.value, exc.code, "yes").inc()
        else:
            stats.skipped_invalid += 1
            INVALID.labels(self.sink.value, exc.code, "no").inc()
        log.warning(
            "sink %s: invalid record %s[%d]@%d: %s",
            self.sink.value,
            rec.topic,
            rec.partition,
            rec.offset,
            exc.reason,
        )

    def _first_time(self, name: str) -> bool:
        """A replay (or a redelivery) must not dead-letter the same record twice."""
        return self.receipts is None or self.receipts.claim(name)

    def _dead_letter(
        self,
        rec: Record,
        error: InvalidEvent | str,
        detail: str | None = None,
        event_type: str | None = None,
    ) -> None:
        headers = dead_letter_headers(
            error,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            consumer=self.sink,
            detail=detail,
        )
        if event_type is not None:
            headers.setdefault(DeadLetterHeader.EVENT_TYPE, event_type.encode())
        key = rec.key.decode(errors="replace") if rec.key else f"{rec.topic}:{rec.partition}"
        self.publisher.publish_fire(Topic.DEADLETTER.value, key, rec.value or b"", headers)

    def _add_totals(self, stats: BatchStats) -> None:
        t = self.totals
        t.records += stats.records
        t.dead_lettered += stats.dead_lettered
        t.skipped_invalid += stats.skipped_invalid
        t.ignored += stats.ignored
        for k, v in stats.applied.items():
            t.applied[k] = t.applied.get(k, 0) + v
