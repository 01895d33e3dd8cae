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

from prometheus_client import Counter, Histogram

from polystream.bus.ports import BulkEventPublisher, EventConsumer, PublishError, Record
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import (
    EVENT_TYPES,
    Envelope,
    Receipt,
    ReceiptStatus,
    Sink,
    Topic,
    dead_letter_headers,
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
STORE_RETRIES = Counter(
    "polystream_sink_store_retries_total", "Batches retried after a transient store error", ["sink"]
)


def primary_sink(topic: str) -> Sink | None:
    """The sink that dead-letters the invalid records of ``topic``: the first store sink (in
    `Sink` order) that consumes any of its event types."""
    consumers = {s for spec in EVENT_TYPES.values() if spec.topic == topic for s in spec.consumers}
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


@dataclass
class BatchStats:
    records: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    skipped_invalid: int = 0
    ignored: int = 0
    committed: bool = False


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
        if not records:
            return stats
        t0 = time.perf_counter()
        try:
            self._process(records, stats)
        except (TransientStoreError, PublishError) as exc:
            STORE_RETRIES.labels(self.sink.value).inc()
            log.warning(
                "sink %s: batch not durable, will retry after %.1fs: %s",
                self.sink.value,
                self._backoff,
                exc,
            )
            self.consumer.seek_to_committed()
            time.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self.config.backoff_max_s)
            return stats
        self.consumer.commit(records)
        stats.committed = True
        self._backoff = self.config.backoff_initial_s
        BATCH_SECONDS.labels(self.sink.value).observe(time.perf_counter() - t0)
        self._add_totals(stats)
        return stats

    # ----------------------------------------------------------------------- batch
    def _process(self, records: Sequence[Record], stats: BatchStats) -> None:
        events: list[tuple[Record, Envelope[Any]]] = []
        for rec in records:
            try:
                env = decode(rec.value if rec.value is not None else b"")
            except InvalidEvent as exc:
                self._invalid(rec, exc, stats)
                continue
            if env.type in self._types:
                events.append((rec, env))
            else:
                stats.ignored += 1

        outcomes = self._apply_with_retries(events, stats)
        now = datetime.now(UTC)
        receipts = [
            Receipt(
                event_id=env.event_id,
                event_type=env.type,
                sink=self.sink,
                status=out.status,
                reason=out.reason,
                processed_at=now,
            )
            for (_, env), out in zip(events, outcomes, strict=True)
            if out is not None
        ]
        for rc in receipts:
            stats.applied[rc.status.value] = stats.applied.get(rc.status.value, 0) + 1
            EVENTS.labels(self.sink.value, rc.status.value).inc()
        for rc in receipts:
            self.publisher.publish_fire(
                Topic.RECEIPTS.value, str(rc.event_id), rc.model_dump_json().encode()
            )
        # Dead letters and receipts must be acknowledged before the offsets move.
        self.publisher.flush(30.0)
        if self.receipts is not None and receipts:
            self.receipts.record(receipts)

    def _apply_with_retries(
        self, events: list[tuple[Record, Envelope[Any]]], stats: BatchStats
    ) -> list[Outcome | None]:
        """Outcomes aligned with ``events``; None where the event was dead-lettered (its
        dead-letter receipt is recorded here)."""
        outcomes: list[Outcome | None] = [None] * len(events)
        pending = list(range(len(events)))
        delay = self.config.backoff_initial_s
        attempt = 0
        while pending:
            try:
                result = self.store.apply([events[i][1] for i in pending])
            except PermanentStoreError as exc:
                bad = next((i for i in pending if events[i][1].event_id == exc.event_id), None)
                if bad is None:
                    raise TransientStoreError(
                        f"store named an event not in the batch: {exc}"
                    ) from exc
                rec, env = events[bad]
                self._dead_letter(rec, "store_rejected", exc.reason, env.type)
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
        return outcomes

    def _invalid(self, rec: Record, exc: InvalidEvent, stats: BatchStats) -> None:
        if primary_sink(rec.topic) is self.sink:
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
            headers.setdefault("dlq.event.type", event_type.encode())
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
