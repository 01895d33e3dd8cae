"""The S2 sink: what a store's consumer does with a batch, on the shared consumer loop.

The loop (`polystream.runtime.loop`) polls, flushes, commits and rewinds; this module decodes,
applies the batch to the store, dead-letters, defers and writes receipts:

* Records that are not valid events go to the dead-letter topic with the reason, once: only
  the topic's *primary* sink dead-letters (several sinks read each topic); the others count
  them. A valid event that a store can never apply (PermanentStoreError) is dead-lettered by
  that sink, and the rest of its batch goes on.
* A transient store error is retried a few times inside the batch with backoff; while it
  persists the batch is not durable and the loop rewinds (lag grows, nothing is skipped).
* An event whose prerequisite lives on another topic (a rating read before its user's
  registration) is *deferred*: the store applied and recorded nothing, the worker keeps it and
  holds its partition's commit below it, and offers it again when the topics it waits for
  bring something new. It becomes final when the group has read those topics past it
  (`polystream.runtime.progress`), never because time passed. Partitions holding too many
  deferred events are paused so that the topics they wait for keep flowing.
* Every settled event gets a receipt on the receipts topic (for the audit's lineage) and in the
  receipt log (for read-your-writes), after the batch is durable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Counter_
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from polystream.bus.ports import BulkEventPublisher, EventConsumer, Record
from polystream.bus.topology import UPSTREAM_TOPICS, Topic, primary_sink
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import (
    EVENT_TYPES,
    Envelope,
    Receipt,
    ReceiptStatus,
    Sink,
    decode,
    event_types_for,
    peek_type,
)
from polystream.observe.tracing import note_batch
from polystream.receipts import ReceiptLog
from polystream.runtime.deadletters import DeadLetters, event_claim, record_claim
from polystream.runtime.loop import TP, BatchContext, ConsumerLoop, LoopConfig, NotDurable
from polystream.runtime.progress import ProgressGate, Waiting
from polystream.runtime.retry import Backoff
from polystream.sinks.ports import EventStore, Outcome
from polystream.store_errors import PermanentStoreError, TransientStoreError

log = logging.getLogger(__name__)

# event_type is one of the registry's types, or INVALID_TYPE for a record that is no event
# (dead-lettered by its primary sink): the label's cardinality stays bounded.
EVENTS = Counter(
    "polystream_sink_events_total", "Events handled by a sink, by event type and outcome",
    ["sink", "event_type", "status"],
)
INVALID_TYPE = "invalid"
INVALID = Counter(
    "polystream_sink_invalid_records_total",
    "Records that were not valid events",
    ["sink", "reason", "dead_lettered"],
)
DEFERRED = Gauge("polystream_sink_deferred_events",
                 "Events waiting for a prerequisite from another topic", ["sink"])
STORE_RETRIES = Counter(
    "polystream_sink_store_retries_total", "Batches retried after a transient store error", ["sink"]
)


@dataclass
class WorkerConfig(LoopConfig):
    """The consumer loop's settings (batching, backoff, flush) plus what a sink adds."""

    # Quick retries inside one batch, then the loop rewinds and waits longer between attempts.
    retry_attempts: int = 4
    # A deferred event is decided once the group has read the topics it waits for past its
    # time plus this (clock skew between producers, records in flight); see runtime.progress.
    prerequisite_grace_s: float = 5.0
    # How often deferred events are offered to the store again while their topics bring news,
    # and how often the group's progress is asked for.
    defer_retry_s: float = 0.5
    # Beyond this many deferred events, the partitions holding them are paused (and resumed
    # below half), so the topics they wait for are read first and memory stays bounded.
    max_deferred: int = 5_000


@dataclass
class BatchStats:
    records: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    skipped_invalid: int = 0
    ignored: int = 0
    committed: bool = False

    def add(self, other: BatchStats) -> None:
        self.records += other.records
        self.dead_lettered += other.dead_lettered
        self.skipped_invalid += other.skipped_invalid
        self.ignored += other.ignored
        for k, v in other.applied.items():
            self.applied[k] = self.applied.get(k, 0) + v


@dataclass
class _Pending:
    record: Record
    event: Envelope[Any]
    _waiting: Waiting | None = None

    @property
    def waiting(self) -> Waiting:
        if self._waiting is None:
            ts = self.record.timestamp_ms or int(self.event.occurred_at.timestamp() * 1000)
            self._waiting = Waiting(self.record.topic, self.event.key, ts)
        return self._waiting


class SinkHandler:
    """One store's batch processing (see the module docstring)."""

    def __init__(self, *, sink: Sink, store: EventStore, receipts: ReceiptLog | None,
                 config: WorkerConfig) -> None:
        self.sink = sink
        self.store = store
        self.receipts = receipts
        self.config = config
        self._types = frozenset(event_types_for(sink))
        self._others = frozenset(EVENT_TYPES) - self._types
        self._dead_letters = DeadLetters(sink.value, claim=receipts.claim if receipts else None,
                                         release=receipts.release if receipts else None,
                                         confirm=receipts.confirm if receipts else None)
        self._gate = ProgressGate(
            {t.value: [u.value for u in ups] for t, ups in UPSTREAM_TOPICS.items()},
            grace_s=config.prerequisite_grace_s, check_every_s=config.defer_retry_s)
        # Events waiting for a prerequisite from another topic, in log order per partition.
        # Their offsets are not committed until they are settled.
        self._deferred: list[_Pending] = []
        self._paused: set[TP] = set()
        # A topic others wait for is never paused: its deferred events hold its commit, and the
        # events waiting for it are decided only once the group has read it (a paused upstream
        # partition would never get there, and everything behind it would wait for good).
        self._pausable = frozenset(t.value for t in Topic) - {
            u.value for ups in UPSTREAM_TOPICS.values() for u in ups}
        self._last_offer = 0.0
        self._last_retry = 0.0
        self._last_gate = 0.0
        self._last_report = 0.0
        self._unsettled: list[Receipt] = []
        self._unsettled_json: list[str] = []
        self._primary_of: dict[str, bool] = {}
        self.stats = BatchStats()
        self.totals = BatchStats()

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    def _is_primary(self, topic: str) -> bool:
        known = self._primary_of.get(topic)
        if known is None:
            known = self._primary_of[topic] = primary_sink(topic) is self.sink
        return known

    # ----------------------------------------------------------------- BatchHandler

    def wants_idle_call(self) -> bool:
        return bool(self._deferred) and (
            time.monotonic() - self._last_offer >= self.config.defer_retry_s)

    def held(self) -> Mapping[TP, int]:
        held: dict[TP, int] = {}
        for d in self._deferred:
            tp = (d.record.topic, d.record.partition)
            if d.record.offset < held.get(tp, d.record.offset + 1):
                held[tp] = d.record.offset
        return held

    def forget(self, owned: set[TP]) -> None:
        if self._deferred:
            self._deferred = [d for d in self._deferred
                              if (d.record.topic, d.record.partition) in owned]
        self._paused &= owned

    def reset(self, ctx: BatchContext) -> None:
        self._dead_letters.rewound()
        self._deferred.clear()
        self._unsettled.clear()
        self._unsettled_json.clear()
        self._gate.forget()
        self._resume_all(ctx.consumer)

    def close(self) -> None:
        self.store.close()

    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        self.stats = stats = BatchStats(records=len(records))
        self._last_offer = time.monotonic()
        fresh: list[_Pending] = []
        for rec in records:
            if not self._is_primary(rec.topic):
                # Not ours to dead-letter: a registered type we do not consume is skipped on
                # its header alone (a poster upload's full validation costs the Redis sink
                # more than the heartbeats around it); its primary sink judges the rest.
                claimed = peek_type(rec.value if rec.value is not None else b"")
                if claimed in self._others:
                    stats.ignored += 1
                    continue
            try:
                env = decode(rec.value if rec.value is not None else b"")
            except InvalidEvent as exc:
                self._invalid(rec, exc, stats, ctx.publisher)
                continue
            if env.type in self._types:
                fresh.append(_Pending(rec, env))
            else:
                stats.ignored += 1

        settled: list[tuple[_Pending, Outcome]] = []
        waiting = self._deferred
        self._deferred = []
        now = time.monotonic()
        if waiting and now - self._last_gate >= self.config.defer_retry_s:
            # Decided by the group's progress through the topics they wait for: applied once
            # more, and whatever the store says now is final.
            self._last_gate = now
            final_flags = self._gate.decidable([d.waiting for d in waiting], ctx.consumer)
            final = [d for d, f in zip(waiting, final_flags, strict=True) if f]
            waiting = [d for d, f in zip(waiting, final_flags, strict=True) if not f]
            if final:
                outcomes = self._apply_with_retries(final, stats, ctx, allow_defer=False)
                settled += zip(final, outcomes, strict=True)
        # Offering the others again is worth it when a topic they wait for brought something
        # new (or now and then: another member of the group may be the one reading it). Only
        # the first waiting event of each key is offered: the ones behind it wait for it, and
        # are offered once it is settled. Everything else of a waiting key is held back too
        # (Kafka's order is per key).
        upstream = {u.value for d in waiting
                    for u in UPSTREAM_TOPICS.get(Topic(d.record.topic), ())}
        news = any(d.record.topic in upstream for d in fresh) or not fresh
        since = now - self._last_retry
        reoffer = bool(waiting) and ((news and since >= self.config.defer_retry_s)
                                     or since >= 10 * self.config.defer_retry_s)
        heads: list[_Pending] = []
        behind: dict[tuple[str, str], list[_Pending]] = {}
        for d in waiting:
            key = (d.record.topic, d.event.key)
            if key in behind:
                behind[key].append(d)
            else:
                behind[key] = []
                heads.append(d)
        if reoffer:
            self._last_retry = now
            for item, out in zip(heads, self._apply_with_retries(heads, stats, ctx),
                                 strict=True):
                if out.retryable:
                    self._deferred.append(item)
                else:
                    settled.append((item, out))
        else:
            self._deferred.extend(heads)
        still = {(d.record.topic, d.event.key) for d in self._deferred}
        for key, rest in behind.items():
            if key in still:
                self._deferred.extend(rest)
        batch = [d for key, rest in behind.items() if key not in still for d in rest]
        batch += [d for d in fresh if (d.record.topic, d.event.key) not in still]
        self._deferred += [d for d in fresh if (d.record.topic, d.event.key) in still]
        for item, out in zip(batch, self._apply_with_retries(batch, stats, ctx), strict=True):
            if out.retryable:
                self._deferred.append(item)
            else:
                settled.append((item, out))
        self._deferred.sort(key=lambda d: (d.record.topic, d.record.partition, d.record.offset))
        self._pace(ctx.consumer)

        at = datetime.now(UTC)
        receipts = [
            Receipt(event_id=item.event.event_id, event_type=item.event.type, sink=self.sink,
                    status=out.status, reason=out.reason, processed_at=at)
            for item, out in settled
        ]
        # Encoded once, for the topic now and the receipt log in `settle`.
        encoded = [rc.model_dump_json() for rc in receipts]
        # Counted locally, then one labelled increment per (type, status) of the batch.
        counts: Counter_[tuple[str, str]] = Counter_()
        for rc, data in zip(receipts, encoded, strict=True):
            counts[rc.event_type, rc.status.value] += 1
            ctx.publisher.publish_fire(Topic.RECEIPTS.value, str(rc.event_id), data.encode())
        for (event_type, status), n in counts.items():
            stats.applied[status] = stats.applied.get(status, 0) + n
            EVENTS.labels(self.sink.value, event_type, status).inc(n)
        self._unsettled = receipts
        self._unsettled_json = encoded
        DEFERRED.labels(self.sink.value).set(len(self._deferred))
        note_batch({"events": len(fresh), "deferred": len(self._deferred),
                    "ignored": stats.ignored, "invalid": stats.skipped_invalid,
                    **{f"outcome.{status}": n for status, n in stats.applied.items()}})
        if self._deferred and now - self._last_report >= 10.0:
            self._last_report = now
            log.info("sink %s: %d event(s) waiting for other topics; %d decided now",
                     self.sink.value, len(self._deferred), len(settled))

    def settle(self) -> None:
        """The receipts go to the receipt log once the batch and its receipts are durable; the
        claims of the dead letters Kafka acknowledged are confirmed."""
        self._dead_letters.settle_claims()
        if self.receipts is not None and self._unsettled:
            try:
                self.receipts.record(self._unsettled, self._unsettled_json)
            except TransientStoreError as exc:
                raise NotDurable(f"receipts not recorded: {exc}") from exc
        self._unsettled = []
        self._unsettled_json = []

    # ------------------------------------------------------------------------ store

    def _apply_with_retries(self, items: list[_Pending], stats: BatchStats, ctx: BatchContext,
                            *, allow_defer: bool = True) -> list[Outcome]:
        """Outcomes aligned with ``items``. An event the store can never apply is
        dead-lettered here and gets a DEAD_LETTERED outcome."""
        if not items:
            return []
        outcomes: list[Outcome | None] = [None] * len(items)
        pending = list(range(len(items)))
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        attempt = 0
        while pending:
            try:
                result = self.store.apply([items[i].event for i in pending],
                                          allow_defer=allow_defer)
            except PermanentStoreError as exc:
                bad = next((i for i in pending if items[i].event.event_id == exc.event_id), None)
                if bad is None:
                    raise NotDurable(f"store named an event not in the batch: {exc}") from exc
                item = items[bad]
                self._dead_letters.send(ctx.publisher, item.record, "store_rejected",
                                        detail=exc.reason, event_type=item.event.type,
                                        once_as=event_claim(self.sink.value, item.event.event_id))
                stats.dead_lettered += 1
                outcomes[bad] = Outcome(ReceiptStatus.DEAD_LETTERED, exc.reason)
                pending.remove(bad)
                continue
            except TransientStoreError as exc:
                attempt += 1
                if attempt >= self.config.retry_attempts or ctx.stop.is_set():
                    raise NotDurable(str(exc)) from exc
                STORE_RETRIES.labels(self.sink.value).inc()
                if backoff.wait(ctx.stop):
                    raise NotDurable("stopping") from exc
                continue
            for i, out in zip(pending, result, strict=True):
                outcomes[i] = out
            pending = []
        return [out for out in outcomes if out is not None]

    def _invalid(self, rec: Record, exc: InvalidEvent, stats: BatchStats,
                 publisher: BulkEventPublisher) -> None:
        if primary_sink(rec.topic) is self.sink:
            self._dead_letters.send(publisher, rec, exc,
                                    once_as=record_claim(rec))
            stats.dead_lettered += 1
            INVALID.labels(self.sink.value, exc.code, "yes").inc()
            EVENTS.labels(self.sink.value, INVALID_TYPE, ReceiptStatus.DEAD_LETTERED.value).inc()
        else:
            stats.skipped_invalid += 1
            INVALID.labels(self.sink.value, exc.code, "no").inc()
        log.warning("sink %s: invalid record %s[%d]@%d: %s", self.sink.value, rec.topic,
                    rec.partition, rec.offset, exc.reason)

    # -------------------------------------------------------------------- pausing

    def _pace(self, consumer: EventConsumer) -> None:
        """Pause the partitions of deferred events while there are too many of them: the
        topics they wait for (never paused) then get the whole fetch."""
        limit = self.config.max_deferred
        if len(self._deferred) > limit:
            hold = {(d.record.topic, d.record.partition) for d in self._deferred
                    if d.record.topic in self._pausable} - self._paused
            if hold:
                consumer.pause(sorted(hold))
                self._paused |= hold
                log.info("sink %s: %d events deferred, pausing %d partition(s)",
                         self.sink.value, len(self._deferred), len(hold))
        elif self._paused and len(self._deferred) <= limit // 2:
            self._resume_all(consumer)

    def _resume_all(self, consumer: EventConsumer) -> None:
        if self._paused:
            consumer.resume(sorted(self._paused))
            self._paused.clear()


class SinkWorker(ConsumerLoop):
    """A sink: the consumer loop with a store's handler."""

    handler: SinkHandler

    def __init__(self, *, sink: Sink, consumer: EventConsumer, store: EventStore,
                 publisher: BulkEventPublisher, receipts: ReceiptLog | None,
                 config: WorkerConfig | None = None) -> None:
        cfg = config or WorkerConfig()
        self.sink = sink
        self.store = store
        super().__init__(name=f"sink {sink.value}", consumer=consumer, publisher=publisher,
                         handler=SinkHandler(sink=sink, store=store, receipts=receipts,
                                             config=cfg),
                         config=cfg)

    @property
    def deferred(self) -> int:
        return self.handler.deferred

    @property
    def totals(self) -> BatchStats:
        return self.handler.totals

    def step(self) -> BatchStats:  # type: ignore[override]
        """One batch; its stats (``committed`` False when it will be delivered again)."""
        self.handler.stats = BatchStats()
        result = super().step()
        stats = self.handler.stats
        stats.records = result.records
        stats.committed = result.committed
        if result.committed:
            self.handler.totals.add(stats)
        return stats

    def run(self, stop: threading.Event) -> None:
        super().run(stop)
