"""The auditor (S3): its own consumer group over every topic, indexing everything it reads.

Per batch::

    records = consumer.poll_batch(...)
    build one index item per record:
        event topics  -> the event's document (redacted, pseudonymised), _id = event id
        receipts      -> a lineage update of the event's document
        dead letters  -> a dead-letter document (reason headers, no record bytes)
    anonymise documents of users already erased
    bulk-index; retry rejected items with backoff; dead-letter the ones refused for good
    user.erased in the batch -> erase_user
    flush the dead letters, then commit the offsets

Every dead letter the auditor sends (a malformed receipt, a record its index refused for good)
is claimed first in the receipt log under its own name (`runtime.deadletters.record_claim`
with ``by="audit"``, which never names a sink's claim), so a redelivery or a replay sends it
once. A claim store that is down rewinds the batch like an unreachable index.

Delivery (DESIGN.md §4): offsets are committed only after the bulk is acknowledged and the
dead letters are on Kafka, so a crash at any point means redelivery, and redelivery is harmless
(``_id`` = event id, merges are idempotent). When the index is unreachable the batch is retried
with backoff, the consumer rewinds to its committed offsets and the lag grows; nothing is
skipped. Items the index refuses for good are dead-lettered with the reason, except records of
the dead-letter topic itself (that would loop): those are indexed in a minimal form instead,
and if even that is refused the auditor pauses rather than drop them.

Invalid records on event topics are not dead-lettered here: their topic's primary sink does
that (one dead letter per record, `sinks.worker.primary_sink`), and the auditor indexes the
dead letter when it reads it back from the dead-letter topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter
from pydantic import ValidationError

from polystream.audit.dead_letters import dead_letter_document, minimal_dead_letter_document
from polystream.audit.documents import (
    EventDoc,
    IndexItem,
    LineageUpdate,
    anonymised,
    coalesce,
    event_document,
    lineage_update,
)
from polystream.audit.fold import ReceiptFold
from polystream.audit.ports import AuditIndex, AuditIndexError, AuditIndexUnavailable
from polystream.bus.ports import BulkEventPublisher, EventConsumer, Record
from polystream.bus.topology import Topic
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import Receipt, ReceiptStatus, Sink, UserErased, decode
from polystream.observe.tracing import note_batch
from polystream.receipts import ReceiptLog
from polystream.runtime.deadletters import DeadLetters, record_claim
from polystream.runtime.loop import BatchContext, ConsumerLoop, LoopConfig, NotDurable
from polystream.runtime.retry import ConfigurationError
from polystream.settings import Settings
from polystream.store_errors import StoreError

log = logging.getLogger(__name__)

RECORDS = Counter("polystream_audit_records_total", "Records read by the auditor, by kind",
                  ["kind"])
REJECTED = Counter("polystream_audit_rejected_total",
                   "Index items refused for good, by what was done with them", ["action"])
RETRIES = Counter("polystream_audit_retries_total",
                  "Bulk retries (rejected items) and paused batches (index unavailable)",
                  ["why"])
WRITES = Counter("polystream_audit_writes_total",
                 "Items written to the index, by whether receipts were folded in", ["item"])
ERASURES = Counter("polystream_audit_erasures_total", "Users erased from the audit trail")
#: Used when ``api.audit_secret`` is empty outside production: pseudonyms are then only as
#: secret as this source file, which is fine for a laptop and refused in production.
DEV_AUDIT_SECRET = b"polystream-dev-audit-secret"


class AuditConfigError(ConfigurationError):
    """The auditor cannot run with these settings."""


def audit_secret(settings: Settings) -> bytes:
    secret = settings.api.audit_secret.get_secret_value()
    if secret:
        return secret.encode()
    if settings.environment == "prod":
        raise AuditConfigError("api.audit_secret is empty: personal fields cannot be "
                               "pseudonymised safely (set POLYSTREAM_API__AUDIT_SECRET)")
    log.warning("api.audit_secret is empty: using the development key (never in production)")
    return DEV_AUDIT_SECRET


@dataclass
class AuditConfig(LoopConfig):
    """The consumer loop's settings (batching, backoff, flush) plus what the auditor adds."""

    #: Larger than a sink's: one `_bulk` request per batch, and OpenSearch likes them large.
    batch_size: int = 1000
    #: Bulk attempts for items the index rejects with a retryable status, inside one batch.
    retry_attempts: int = 4
    receipts_topic: str = Topic.RECEIPTS.value
    deadletter_topic: str = Topic.DEADLETTER.value
    #: How often `run` applies the retention policy (deleting old monthly indices).
    retention_every_s: float = 3600.0
    #: Longest a new event document waits for its stores' receipts so that it is written
    #: once (`audit.fold`); 0 writes every item in the batch that read it.
    fold_window_s: float = 0.0
    #: The window while the auditor is behind (its polls come back full), when folding is on:
    #: in a backlog a receipt is read far from its event (`audit.fold`).
    fold_backlog_window_s: float = 30.0
    #: Most event documents waiting at once; beyond, the oldest are written.
    fold_max_docs: int = 20_000


@dataclass
class AuditBatchStats:
    records: int = 0
    events: int = 0
    receipts: int = 0
    dead_letters: int = 0
    #: Invalid records of event topics (dead-lettered by their primary sink, not here).
    invalid: int = 0
    #: Records this auditor sent to the dead-letter topic.
    dead_lettered: int = 0
    retried_items: int = 0
    erased_users: int = 0
    committed: bool = False
    by_type: dict[str, int] = field(default_factory=dict)


Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditHandler:
    """What the auditor does with a batch, on the shared consumer loop."""

    def __init__(
        self,
        *,
        index: AuditIndex,
        secret: bytes,
        config: AuditConfig,
        receipts: ReceiptLog | None = None,
        claims: ReceiptLog | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        """``receipts``: where the auditor records its own receipts (read-your-writes);
        ``claims``: where its dead letters are claimed (defaults to ``receipts``; without
        either, a redelivered record is dead-lettered again)."""
        if not secret:
            raise AuditConfigError("the audit secret must not be empty")
        self.index = index
        self.config = config
        self.receipts = receipts
        self._secret = secret
        self._clock = clock
        claim_log = claims if claims is not None else receipts
        self._dead_letters = DeadLetters(
            Sink.AUDIT.value, topic=config.deadletter_topic,
            claim=claim_log.claim if claim_log is not None else None,
            release=claim_log.release if claim_log is not None else None,
            confirm=claim_log.confirm if claim_log is not None else None)
        self._next_retention = 0.0
        self._fold = ReceiptFold(window_s=config.fold_window_s, max_docs=config.fold_max_docs,
                                 backlog_window_s=config.fold_backlog_window_s)
        self._audited: list[Receipt] = []
        self._stop = threading.Event()
        self._publisher: BulkEventPublisher | None = None
        self.stats = AuditBatchStats()

    # ----------------------------------------------------------------- BatchHandler

    def wants_idle_call(self) -> bool:
        # Asked after a poll that brought nothing: the auditor has caught up, so documents
        # held for their receipts go back to the short window.
        self._fold.behind(False)
        return time.monotonic() >= self._next_retention or self._fold.due()

    def held(self) -> Mapping[tuple[str, int], int]:
        return self._fold.held_offsets()

    def forget(self, owned: set[tuple[str, int]]) -> None:
        self._fold.forget(owned)

    def reset(self, ctx: BatchContext) -> None:
        self._dead_letters.rewound()
        self._audited = []
        self._fold.clear()

    @property
    def waiting(self) -> int:
        """Event documents held for their receipts."""
        return len(self._fold)

    def close(self) -> None:
        self.index.close()

    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        self._stop, self._publisher = ctx.stop, ctx.publisher
        self._maybe_apply_retention()
        self.stats = AuditBatchStats(records=len(records))
        self._fold.behind(len(records) >= self.config.batch_size)
        if not records and not self._fold.due():
            return
        try:
            self._process(records, self.stats)
            s = self.stats
            note_batch({"events": s.events, "receipts": s.receipts,
                        "dead_letters": s.dead_letters, "invalid": s.invalid,
                        "dead_lettered": s.dead_lettered, "retried_items": s.retried_items})
        except (AuditIndexError, StoreError) as exc:
            # Unavailable index, or anything else that stops the batch from being durable:
            # the loop rewinds and tries again later. Refusals of single items never get here.
            RETRIES.labels("paused").inc()
            raise NotDurable(str(exc)) from exc

    def settle(self) -> None:
        self._dead_letters.settle_claims()
        if self._audited and self.receipts is not None:
            try:
                self.receipts.record(self._audited)
            except StoreError as exc:
                raise NotDurable(f"receipts not recorded: {exc}") from exc
        self._audited = []

    def _maybe_apply_retention(self) -> None:
        if time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + self.config.retention_every_s
        try:
            deleted = self.index.apply_retention(self._clock())
        except AuditIndexError as exc:
            log.warning("auditor: retention not applied this time: %s", exc)
            return
        if deleted:
            log.info("auditor: retention deleted buckets %s", ", ".join(deleted))

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # ------------------------------------------------------------------------ batch

    def _process(self, records: Sequence[Record], stats: AuditBatchStats) -> None:
        now = self._clock()
        work: list[tuple[Record, IndexItem]] = []
        erasures: list[str] = []
        audited: list[Receipt] = []
        for rec in records:
            if rec.topic == self.config.receipts_topic:
                try:
                    receipt = Receipt.model_validate_json(rec.value or b"")
                except ValidationError as exc:
                    # Only the auditor reads receipts, so it is the one to dead-letter them.
                    detail = f"not a receipt ({exc.error_count()} problems)"
                    if self._dead_letter(rec, "malformed", detail, None):
                        stats.dead_lettered += 1
                    continue
                update = lineage_update(receipt)
                stats.receipts += 1
                if not self._fold.fold_receipt(rec, update):
                    work.append((rec, update))
            elif rec.topic == self.config.deadletter_topic:
                work.append((rec, dead_letter_document(rec, secret=self._secret)))
                stats.dead_letters += 1
            else:
                try:
                    env = decode(rec.value if rec.value is not None else b"")
                except InvalidEvent:
                    stats.invalid += 1
                    continue
                doc = event_document(env, rec, secret=self._secret, now=now)
                stats.events += 1
                stats.by_type[env.type] = stats.by_type.get(env.type, 0) + 1
                own = Receipt(event_id=env.event_id, event_type=env.type, sink=Sink.AUDIT,
                              status=ReceiptStatus.STORED, processed_at=now
                              ) if self.receipts is not None else None
                if isinstance(env.payload, UserErased):
                    # Never held: the erasure is applied in the batch that reads it.
                    erasures.append(env.payload.user_id)
                elif self._fold.hold_event(rec, doc, own):
                    continue
                work.append((rec, doc))
                if own is not None:
                    audited.append(own)
        for held in self._fold.release(everything=self._stop.is_set()):
            work.extend(held.parts)
            audited.extend(held.audited)

        batch = self._coalesced(work)
        users = {item.user_id for _, item in batch
                 if isinstance(item, EventDoc) and item.user_id is not None}
        erased = self.index.erased_users(users) if users else set()
        if erased:
            # Erased before: a replay or a late event must not bring their data back.
            batch = [(recs, anonymised(item))
                     if isinstance(item, EventDoc) and item.user_id in erased else (recs, item)
                     for recs, item in batch]

        self._index_with_retries(batch, stats)
        for _, item in batch:
            # How well folding works: event documents written with a store's receipt, without
            # one, and receipts that needed a write of their own (a scripted update).
            if isinstance(item, LineageUpdate):
                WRITES.labels("receipt").inc()
            elif set(item.lineage) - {Sink.AUDIT.value}:
                WRITES.labels("event_with_receipts").inc()
            else:
                WRITES.labels("event").inc()

        for user in dict.fromkeys(erasures):
            self.index.erase_user(user)
            stats.erased_users += 1
            ERASURES.inc()
        # Another auditor may have erased one of these users while this batch was being
        # indexed, after our check above and before our documents were searchable to its
        # update: erasing again (idempotent) closes that window.
        late = (self.index.erased_users(users) - erased - set(erasures)) if users else set()
        for user in late:
            self.index.erase_user(user)

        # Recorded for read-your-writes once the loop has flushed the dead letters (`settle`).
        self._audited = audited

    @staticmethod
    def _coalesced(work: list[tuple[Record, IndexItem]]) -> list[tuple[list[Record], IndexItem]]:
        """One item per document (see `documents.coalesce`), receipts of documents from
        earlier batches first: OpenSearch then refreshes at most once per bulk for them."""
        slots: dict[tuple[str, str], int] = {}
        merged: list[tuple[list[Record], IndexItem]] = []
        for rec, item in work:
            key = (item.bucket, item.doc_id)
            at = slots.get(key)
            if at is None:
                slots[key] = len(merged)
                merged.append(([rec], item))
            else:
                records, previous = merged[at]
                merged[at] = ([*records, rec], coalesce(previous, item))
        return ([entry for entry in merged if isinstance(entry[1], LineageUpdate)]
                + [entry for entry in merged if isinstance(entry[1], EventDoc)])

    def _index_with_retries(self, work: list[tuple[list[Record], IndexItem]],
                            stats: AuditBatchStats) -> None:
        pending = work
        delay = self.config.backoff_initial_s
        for attempt in range(1, self.config.retry_attempts + 1):
            failures = self.index.index_batch([item for _, item in pending])
            if not failures:
                return
            by_item = {id(item): (records, item) for records, item in pending}
            retry: list[tuple[list[Record], IndexItem]] = []
            for failure in failures:
                records, item = by_item[id(failure.item)]
                if failure.retryable:
                    retry.append((records, item))
                else:
                    self._refused(records, item, failure.reason, stats)
            if not retry:
                return
            stats.retried_items += len(retry)
            RETRIES.labels("rejected_items").inc(len(retry))
            if attempt < self.config.retry_attempts:
                log.info("auditor: %d items rejected (retryable), attempt %d", len(retry),
                         attempt)
                self._pause(delay)
                delay = min(delay * 2, self.config.backoff_max_s)
            pending = retry
        raise AuditIndexUnavailable(
            f"{len(pending)} items still rejected after {self.config.retry_attempts} attempts")

    def _refused(self, records: list[Record], item: IndexItem, reason: str,
                 stats: AuditBatchStats) -> None:
        """An item the index will never accept: dead-letter its records, never drop them."""
        if isinstance(item, EventDoc) and item.fields.get("kind") == "dead_letter":
            minimal = minimal_dead_letter_document(item)
            again = self.index.index_batch([minimal])
            if again:
                # Nowhere left to put it: pause (lag grows, an operator is alerted by it)
                # rather than lose it.
                raise AuditIndexError(f"dead letter {item.doc_id} refused even in minimal "
                                      f"form: {again[0].reason}")
            log.error("auditor: dead letter %s indexed in minimal form (%s)", item.doc_id,
                      reason)
            REJECTED.labels("minimal").inc()
            return
        event_type = item.fields.get("type") if isinstance(item, EventDoc) else None
        for rec in records:
            log.error("auditor: %s[%d]@%d refused by the index, dead-lettered: %s", rec.topic,
                      rec.partition, rec.offset, reason)
            if self._dead_letter(rec, "store_rejected", reason,
                                 event_type if isinstance(event_type, str) else None):
                stats.dead_lettered += 1
                REJECTED.labels("dead_lettered").inc()

    def _dead_letter(self, rec: Record, reason: str, detail: str,
                     event_type: str | None) -> bool:
        """Queue ``rec``'s dead letter unless an earlier delivery of it claimed it; True when
        queued. Raises `NotDurable` when the claim store cannot answer."""
        assert self._publisher is not None, "only called while handling a batch"
        return self._dead_letters.send(self._publisher, rec, reason, detail=detail,
                                       event_type=event_type,
                                       once_as=record_claim(rec, by=Sink.AUDIT.value))


class AuditWorker(ConsumerLoop):
    """The auditor: the consumer loop with the audit handler."""

    handler: AuditHandler

    def __init__(
        self,
        *,
        consumer: EventConsumer,
        index: AuditIndex,
        publisher: BulkEventPublisher,
        secret: bytes,
        config: AuditConfig | None = None,
        receipts: ReceiptLog | None = None,
        claims: ReceiptLog | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        cfg = config or AuditConfig()
        self.index = index
        self.config = cfg
        super().__init__(
            name="auditor", consumer=consumer, publisher=publisher,
            handler=AuditHandler(index=index, secret=secret, config=cfg, receipts=receipts,
                                 claims=claims, clock=clock),
            config=cfg)
        self.totals = AuditBatchStats()

    def step(self) -> AuditBatchStats:  # type: ignore[override]
        """One batch; ``committed`` is False when it will be delivered again."""
        self.handler.stats = AuditBatchStats()
        result = super().step()
        stats = self.handler.stats
        stats.records = result.records
        stats.committed = result.committed
        if result.committed and result.records:
            self._add_totals(stats)
        return stats

    def _add_totals(self, stats: AuditBatchStats) -> None:
        total = self.totals
        total.records += stats.records
        total.events += stats.events
        total.receipts += stats.receipts
        total.dead_letters += stats.dead_letters
        total.invalid += stats.invalid
        total.dead_lettered += stats.dead_lettered
        total.retried_items += stats.retried_items
        total.erased_users += stats.erased_users
        for name, n in stats.by_type.items():
            total.by_type[name] = total.by_type.get(name, 0) + n
        RECORDS.labels("event").inc(stats.events)
        RECORDS.labels("receipt").inc(stats.receipts)
        RECORDS.labels("dead_letter").inc(stats.dead_letters)
        RECORDS.labels("invalid").inc(stats.invalid)


# ------------------------------------------------------------------------------- wiring


def default_jsonl_dir(settings: Settings) -> Path:
    """Where the JSONL audit lives when OpenSearch is disabled: next to the stack's state."""
    return settings.stack.resolved_home() / "audit-jsonl"
