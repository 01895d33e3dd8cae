"""Holding event documents until their receipts arrive, so each event is written once.

Without it every event costs the index two writes: the event's ``create``, then, a batch or
two later, a scripted update merging the receipt of the store that consumed it. The update
reads the document back (a realtime get, which refreshes the shard when the document is not
searchable yet): measured, it is the auditor's wall. The registry says which stores consume
each event type, so the auditor knows which receipts to wait for: it keeps each new event
document (with the receipts that came with it) for at most ``window_s``, and writes it as a
single ``create`` as soon as every expected receipt is in, or when the window ends, or when
more than ``max_docs`` are waiting (oldest first).

While the auditor is behind (its polls come back full: a backlog, or a pipeline publishing
faster than it indexes), the window is ``backlog_window_s`` instead. Reading a backlog, a
receipt is thousands of records away from its event (librdkafka hands over a partition's
fetched records in runs, and the small receipts partitions are read ahead of the event
partitions), far more than ``window_s`` of reading; with the short window most documents went
out without their receipts, and each receipt then cost a scripted update (or the receipt came
first, created the document, and the event's ``create`` failed with 409 and needed a merge of
its own). Measured on a 20,000-event backlog: 2,100 records/s with the 2 s window, 8,000/s
holding for up to 30 s. Freshness does not suffer: a complete document is written as soon as
its last receipt is read, and once the auditor has caught up the short window applies again.

The guarantees do not move: records of a held document are not committed (`held` keeps their
partitions' commits below them), a rewind drops everything held (it is read again), a revoked
partition's records are dropped from what is held (their new owner reads them again). A
receipt whose event is not held (written earlier, or not read yet) is written at once, as
before.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from polystream.audit.documents import EventDoc, IndexItem, LineageUpdate
from polystream.bus.ports import Record
from polystream.domain.events import Receipt, Sink, event_types_for

TP = tuple[str, int]
Key = tuple[str, str]

#: The stores whose receipts the auditor waits for, per event type.
STORE_SINKS = (Sink.POSTGRES, Sink.MONGO, Sink.REDIS)


def expected_receipts() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for sink in STORE_SINKS:
        for event_type in event_types_for(sink):
            out.setdefault(event_type, set()).add(sink.value)
    return {t: frozenset(s) for t, s in out.items()}


@dataclass
class Held:
    """One document waiting: its records and items in arrival order, coalesced on release."""

    since: float
    expected: frozenset[str]
    parts: list[tuple[Record, IndexItem]] = field(default_factory=list)
    #: False while only receipts are here (read before their event).
    has_event: bool = False
    #: The auditor's own receipt, recorded once the document is written.
    audited: list[Receipt] = field(default_factory=list)
    sinks: set[str] = field(default_factory=set)

    def add(self, record: Record, item: IndexItem) -> None:
        self.parts.append((record, item))
        self.sinks.update(item.lineage)
        self.has_event = self.has_event or isinstance(item, EventDoc)

    @property
    def complete(self) -> bool:
        return self.has_event and self.expected <= self.sinks


class _Offsets:
    """The lowest held offset per partition, kept as records come and go (a heap per
    partition with lazy deletion): asked once per batch, with thousands of records held."""

    def __init__(self) -> None:
        self._heaps: dict[TP, list[int]] = {}
        self._live: dict[TP, dict[int, int]] = {}

    def add(self, rec: Record) -> None:
        tp = (rec.topic, rec.partition)
        live = self._live.setdefault(tp, {})
        live[rec.offset] = live.get(rec.offset, 0) + 1
        heapq.heappush(self._heaps.setdefault(tp, []), rec.offset)

    def remove(self, rec: Record) -> None:
        live = self._live.get((rec.topic, rec.partition))
        if live is None or rec.offset not in live:
            return
        live[rec.offset] -= 1
        if not live[rec.offset]:
            del live[rec.offset]

    def partitions(self) -> set[TP]:
        """Partitions with at least one record held."""
        return {tp for tp, live in self._live.items() if live}

    def lowest(self) -> dict[TP, int]:
        out: dict[TP, int] = {}
        for tp, heap in self._heaps.items():
            live = self._live[tp]
            while heap and heap[0] not in live:
                heapq.heappop(heap)
            if heap:
                out[tp] = heap[0]
        return out

    def clear(self) -> None:
        self._heaps.clear()
        self._live.clear()


class ReceiptFold:
    def __init__(self, *, window_s: float, max_docs: int, backlog_window_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.backlog_window_s = max(window_s, backlog_window_s)
        self.max_docs = max_docs
        self._clock = clock
        self._behind = False
        self._expected = expected_receipts()
        # Insertion order is arrival order: the oldest first.
        self._held: dict[Key, Held] = {}
        # Ready before their window ends: complete, or left over by a revoked partition.
        self._ready: dict[Key, None] = {}
        self._offsets = _Offsets()
        # Documents released lately: their late receipts are written at once rather than
        # held for an event that will not come again.
        self._released: dict[Key, None] = {}
        self._remember = 4 * max_docs

    def __len__(self) -> int:
        return len(self._held)

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def behind(self, behind: bool) -> None:
        """Whether the consumer is behind (its last poll was full): the longer window holds."""
        self._behind = behind

    def _window(self) -> float:
        return self.backlog_window_s if self._behind else self.window_s

    def _add(self, key: Key, held: Held, record: Record, item: IndexItem) -> None:
        held.add(record, item)
        self._offsets.add(record)
        if held.complete:
            self._ready[key] = None

    def hold_event(self, record: Record, doc: EventDoc, audited: Receipt | None) -> bool:
        """Keep a new event document; False when it should be written now (nothing to wait
        for, or folding is off)."""
        event_type = doc.fields.get("type")
        expected = self._expected.get(event_type, frozenset()) if isinstance(
            event_type, str) else frozenset()
        if not self.enabled or not expected:
            return False
        key = (doc.bucket, doc.doc_id)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = Held(self._clock(), expected)
        held.expected = expected
        self._add(key, held, record, doc)
        if audited is not None:
            held.audited.append(audited)
        return True

    def fold_receipt(self, record: Record, update: LineageUpdate) -> bool:
        """Add a receipt to its held event, or hold it for its event (read after it, which
        happens when the receipts partition is read ahead); False when the event was
        released lately (write the receipt now) or folding is off."""
        key = (update.bucket, update.doc_id)
        held = self._held.get(key)
        if held is None:
            if not self.enabled or key in self._released:
                return False
            held = self._held[key] = Held(self._clock(), frozenset())
        self._add(key, held, record, update)
        return True

    def release(self, *, everything: bool = False) -> list[Held]:
        """What is ready to be written: complete, out of its window, or over the cap."""
        if not self._held:
            return []
        if everything:
            ready = list(self._held)
        else:
            ready = list(self._ready)
            chosen = set(ready)
            cutoff = self._clock() - self._window()
            over = len(self._held) - len(chosen) - self.max_docs
            for key, held in self._held.items():
                if held.since > cutoff and over <= 0:
                    break
                if key not in chosen:
                    ready.append(key)
                    over -= 1
        out: list[Held] = []
        for key in ready:
            held = self._held.pop(key)
            self._ready.pop(key, None)
            for rec, _ in held.parts:
                self._offsets.remove(rec)
            self._released[key] = None
            out.append(held)
        while len(self._released) > self._remember:
            del self._released[next(iter(self._released))]
        return out

    def due(self) -> bool:
        """Whether something would be released now without a new record."""
        if not self._held:
            return False
        if self._ready:
            return True
        oldest = next(iter(self._held.values()))
        return self._clock() - oldest.since >= self._window()

    def held_offsets(self) -> Mapping[TP, int]:
        return self._offsets.lowest()

    def forget(self, owned: Iterable[TP]) -> None:
        keep = set(owned)
        if self._offsets.partitions() <= keep:
            # Called after every poll: with nothing revoked there is nothing to look at, and
            # scanning thousands of held documents each time was 40 % of the auditor's CPU.
            return
        for key in list(self._held):
            held = self._held[key]
            parts = [(rec, item) for rec, item in held.parts
                     if (rec.topic, rec.partition) in keep]
            if len(parts) == len(held.parts):
                continue
            for rec, _ in held.parts:
                if (rec.topic, rec.partition) not in keep:
                    self._offsets.remove(rec)
            if not any(isinstance(item, EventDoc) for _, item in parts):
                # The event's record moves to the new owner, which writes its document; the
                # receipts read here stay ours to write (their offsets get committed), so
                # they leave with the next release instead of waiting.
                del self._held[key]
                self._ready.pop(key, None)
                if parts:
                    self._held[key] = Held(held.since, frozenset(), parts)
                    self._ready[key] = None
                continue
            held.parts = parts
            held.sinks = {sink for _, item in parts for sink in item.lineage}
            if not held.complete:
                self._ready.pop(key, None)

    def clear(self) -> None:
        self._held.clear()
        self._ready.clear()
        self._offsets.clear()
        self._released.clear()
