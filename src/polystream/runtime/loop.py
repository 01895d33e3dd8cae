"""The consumer loop: the one place where offsets move.

Every sink and the auditor run this loop; each brings a `BatchHandler` that says what to do
with a batch. Per step::

    records = consumer.poll_batch(...)         # rebalances happen only in here
    handler.handle(records, ctx)               # effects made durable (idempotently)
    publisher.flush()                          # dead letters and receipts acknowledged
    handler.settle()                           # side effects that need the flush first
    consumer.commit(...)                       # up to, not past, what the handler holds back

Delivery semantics (DESIGN.md §4), here once for every consumer:

* Offsets are committed only after the batch is durable and everything it published is
  acknowledged. A crash anywhere before that means redelivery, which idempotent effects
  absorb.
* A handler may hold records back (a sink waiting for a prerequisite from another topic): the
  commit of their partition stops just below the oldest one held.
* When a batch is not durable (`NotDurable`, or the publisher failed) the loop rewinds to the
  committed offsets and waits with backoff; lag grows, nothing is skipped. A rewind that fails
  mid-rebalance is harmless (the next poll's assignment decides where reading starts). Every
  wait watches the stop event.
* A refused commit (the partitions moved) means redelivery to the new owner, not a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from polystream.bus.ports import BulkEventPublisher, BusError, EventConsumer, PublishError, Record
from polystream.observe.tracing import batch_span, log_consumed, note_batch
from polystream.runtime.retry import Backoff

log = logging.getLogger(__name__)

TP = tuple[str, int]

BATCHES = Counter("polystream_consumer_batches_total",
                  "Batches made durable and committed, per consumer", ["consumer"])
RECORDS = Counter("polystream_consumer_records_total", "Records polled, per consumer",
                  ["consumer"])
BATCH_SECONDS = Histogram(
    "polystream_consumer_batch_seconds",
    "Time from a batch's poll to its commit",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_RECORDS = Histogram(
    "polystream_consumer_batch_records", "Records per polled batch", ["consumer"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
REWINDS = Counter("polystream_consumer_rewinds_total",
                  "Batches not committed and delivered again, by why", ["consumer", "why"])
PAUSED = Gauge("polystream_consumer_paused_partitions",
               "Partitions paused so that other partitions keep flowing", ["consumer"])


class NotDurable(Exception):
    """A batch's effects are not (all) durable: the loop rewinds to the committed offsets and
    tries again after a backoff. Handlers raise it from their stores' transient errors."""


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a handler may use during one batch besides its own stores."""

    consumer: EventConsumer
    publisher: BulkEventPublisher
    stop: threading.Event


class BatchHandler(Protocol):
    """What one kind of consumer does with its records; the loop does everything else."""

    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        """Make the batch's effects durable. ``records`` may be empty when `wants_idle_call`
        said so. Raise `NotDurable` when they are not."""
        ...

    def settle(self) -> None:
        """After the publisher's flush: effects that must come after the batch's dead letters
        and receipts are acknowledged (recording receipts for read-your-writes)."""
        ...

    def held(self) -> Mapping[TP, int]:
        """Lowest offset per partition that must not be committed yet."""
        ...

    def wants_idle_call(self) -> bool:
        """Whether `handle` is worth calling although the poll brought nothing."""
        ...

    def forget(self, owned: set[TP]) -> None:
        """Drop what is held for partitions this member no longer owns (their new owner reads
        them again from the committed offset)."""
        ...

    def reset(self, ctx: BatchContext) -> None:
        """Drop everything held: the loop is about to rewind to the committed offsets."""
        ...

    def close(self) -> None: ...


@dataclass
class LoopConfig:
    batch_size: int = 500
    linger_s: float = 0.05
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    flush_timeout_s: float = 30.0
    publisher_close_timeout_s: float = 10.0


@dataclass
class StepResult:
    records: int = 0
    #: False when the batch will be delivered again (not durable, or the commit was refused).
    committed: bool = False


class ConsumerLoop:
    """Drives one consumer-group member and one handler from one thread."""

    def __init__(self, *, name: str, consumer: EventConsumer, publisher: BulkEventPublisher,
                 handler: BatchHandler, config: LoopConfig | None = None) -> None:
        self.name = name
        self.consumer = consumer
        self.publisher = publisher
        self.handler = handler
        self.loop_config = config or LoopConfig()
        self._backoff = Backoff(self.loop_config.backoff_initial_s,
                                self.loop_config.backoff_max_s)
        self._stop = threading.Event()
        # Highest offset handled per partition; committed only below what the handler holds.
        self._processed: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    def _ctx(self) -> BatchContext:
        return BatchContext(self.consumer, self.publisher, self._stop)

    # ------------------------------------------------------------------------- loop

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set, then close the handler, the consumer (leaving the group,
        so its partitions move at once) and the publisher, each explicitly."""
        self._stop = stop
        log.info("%s: started", self.name)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()
            log.info("%s: stopped", self.name)

    def close(self) -> None:
        for what, close in (("handler", self.handler.close), ("consumer", self.consumer.close),
                            ("publisher", lambda: self.publisher.close(
                                self.loop_config.publisher_close_timeout_s))):
            try:
                close()
            except Exception as exc:  # closing the others matters more than this one
                log.warning("%s: closing the %s failed: %s", self.name, what, exc)

    def step(self) -> StepResult:
        """Poll and process one batch."""
        cfg = self.loop_config
        records = self.consumer.poll_batch(cfg.batch_size, cfg.linger_s)
        result = StepResult(records=len(records))
        self._forget_revoked()
        if not records and not self.handler.wants_idle_call():
            return result
        # The batch's span (when spans are exported) is current while the handler runs.
        with batch_span(self.name, records):
            self._process(records, result)
            note_batch({"committed": result.committed})
        return result

    def _process(self, records: Sequence[Record], result: StepResult) -> None:
        cfg = self.loop_config
        started = time.perf_counter()
        if records:
            RECORDS.labels(self.name).inc(len(records))
            BATCH_RECORDS.labels(self.name).observe(len(records))
            log_consumed(self.name, records)
        for rec in records:
            tp = (rec.topic, rec.partition)
            if rec.offset > self._processed.get(tp, -1):
                self._processed[tp] = rec.offset
        try:
            self.handler.handle(records, self._ctx())
            self.publisher.flush(cfg.flush_timeout_s)
            self.handler.settle()
        except (NotDurable, PublishError) as exc:
            REWINDS.labels(self.name, "not_durable").inc()
            log.warning("%s: batch of %d not durable, retrying in %.1fs: %s", self.name,
                        len(records), self._backoff.delay, exc)
            self._rewind()
            self._backoff.wait(self._stop)
            return
        try:
            self._commit()
        except BusError as exc:
            # A rebalance moved partitions under us: the new owner reads the uncommitted
            # records again, and idempotent effects absorb the repeat.
            REWINDS.labels(self.name, "commit_refused").inc()
            log.warning("%s: commit refused, records will be redelivered: %s", self.name, exc)
            self._rewind()
            return
        result.committed = True
        self._backoff.reset()
        BATCHES.labels(self.name).inc()
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    # ---------------------------------------------------------------------- offsets

    def _rewind(self) -> None:
        """Everything after the committed offsets comes again, held records included."""
        self.handler.reset(self._ctx())
        self._processed.clear()
        try:
            self.consumer.seek_to_committed()
        except BusError as exc:  # mid-rebalance: the next poll's assignment decides
            log.warning("%s: rewind failed, the next assignment decides: %s", self.name, exc)

    def _forget_revoked(self) -> None:
        if not self._processed:
            return
        try:
            owned = set(self.consumer.assignment())
        except BusError:
            return
        for tp in [tp for tp in self._processed if tp not in owned]:
            del self._processed[tp]
            self._committed.pop(tp, None)
        self.handler.forget(owned)

    def _commit(self) -> None:
        held = self.handler.held()
        marks: list[Record] = []
        for tp, high in self._processed.items():
            target = min(high, held[tp] - 1) if tp in held else high
            if target >= 0 and target > self._committed.get(tp, -1):
                marks.append(Record(tp[0], tp[1], target, None, None))
        if marks:
            self.consumer.commit(marks)
            for rec in marks:
                self._committed[(rec.topic, rec.partition)] = rec.offset
