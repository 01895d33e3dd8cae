"""Folding receipts into their event's document (`audit.fold`): one write per event when the
receipts come in time, the same documents as without folding, nothing committed while held."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from polystream.audit.documents import EventDoc, IndexItem, LineageUpdate, event_document
from polystream.audit.fold import ReceiptFold, expected_receipts
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import IndexFailure
from polystream.audit.worker import AuditConfig
from polystream.bus.ports import Record
from polystream.domain.events import Envelope, ReceiptStatus, Sink, event_types_for
from polystream.domain.examples import example_event

from .conftest import SECRET
from .test_worker import Bus, drain, mixed_events

FOLD = AuditConfig(batch_size=100, linger_s=0.005, backoff_initial_s=0.001,
                   backoff_max_s=0.002, fold_window_s=30.0)


class CountingIndex(InMemoryAuditIndex):
    """Remembers every item it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[IndexItem] = []

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        self.items.extend(items)
        return super().index_batch(items)


def receipts_for(bus: Bus, env: Envelope[Any]) -> None:
    for sink in expected_receipts().get(env.type, frozenset()):
        bus.receipt(env, Sink(sink))


def test_expected_receipts_follow_the_registry() -> None:
    expected = expected_receipts()
    assert expected["playback.progress"] == {"redis"}
    for sink in (Sink.POSTGRES, Sink.MONGO, Sink.REDIS):
        for event_type in event_types_for(sink):
            assert sink.value in expected[event_type]
    assert all(Sink.AUDIT.value not in sinks for sinks in expected.values())


def test_an_event_and_its_receipts_are_one_write_and_nothing_is_committed_before() -> None:
    bus, index = Bus(), CountingIndex()
    env = example_event("playback.progress")
    bus.publish(env)
    worker = bus.auditor(index, "audit-fold", config=FOLD)
    worker.step()
    assert index.items == [] and index.get(env.event_id) is None
    assert worker.handler.waiting == 1
    assert bus.lag("audit-fold") == 1, "a held event must not be committed"

    bus.receipt(env, Sink.REDIS)
    drain(worker)
    assert worker.handler.waiting == 0
    assert len(index.items) == 1 and isinstance(index.items[0], EventDoc)
    record = index.get(env.event_id)
    assert record is not None and set(record.lineage) == {"audit", "redis"}
    assert bus.lag("audit-fold") == 0


def test_folded_documents_equal_unfolded_ones() -> None:
    bus = Bus()
    events = mixed_events(3)
    bus.publish(*events)
    for env in events:
        receipts_for(bus, env)
    plain, folded = CountingIndex(), CountingIndex()
    drain(bus.auditor(plain, "audit-plain"))
    drain(bus.auditor(folded, "audit-folded", config=FOLD))

    def view(index: InMemoryAuditIndex, env: Envelope[Any]) -> dict[str, Any]:
        record = index.get(env.event_id)
        assert record is not None
        return record.model_dump(exclude={"indexed_at"}) | {"lineage": {
            sink: entry.status for sink, entry in record.lineage.items()}}

    for env in events:
        assert view(folded, env) == view(plain, env)
        assert view(folded, env)["lineage"]["audit"] == ReceiptStatus.STORED.value
    assert len(folded.items) < len(plain.items)
    assert not any(isinstance(item, LineageUpdate) for item in folded.items), (
        "every receipt came within the window: none should need its own update")
    assert bus.lag("audit-folded") == 0


def test_the_window_ends_and_a_late_receipt_still_merges() -> None:
    bus, index = Bus(), CountingIndex()
    env = example_event("rating.submitted")
    bus.publish(env)
    config = AuditConfig(batch_size=100, linger_s=0.005, fold_window_s=0.05)
    worker = bus.auditor(index, "audit-window", config=config)
    worker.step()
    assert index.get(env.event_id) is None
    time.sleep(0.06)
    assert worker.handler.wants_idle_call()
    worker.step()
    record = index.get(env.event_id)
    assert record is not None and set(record.lineage) == {"audit"}
    assert bus.lag("audit-window") == 0

    receipts_for(bus, env)
    drain(worker)
    record = index.get(env.event_id)
    assert record is not None
    assert set(record.lineage) == {"audit", *expected_receipts()["rating.submitted"]}


def _record(topic: str, partition: int, offset: int) -> Record:
    return Record(topic, partition, offset, None, None)


def test_held_offsets_forget_and_the_cap() -> None:
    now = [100.0]
    fold = ReceiptFold(window_s=10.0, max_docs=2, clock=lambda: now[0])
    docs = [event_document(example_event("playback.progress"), None, secret=SECRET)
            for _ in range(3)]
    assert fold.hold_event(_record("t", 0, 5), docs[0], None)
    assert fold.hold_event(_record("t", 1, 7), docs[1], None)
    update = LineageUpdate(docs[0].doc_id, docs[0].bucket,
                           {"redis": {"status": "stored", "processed_at": "x"}})
    assert fold.fold_receipt(_record("r", 0, 3), update)
    assert fold.held_offsets() == {("t", 0): 5, ("t", 1): 7, ("r", 0): 3}
    # The first is complete (redis was all it waited for): released at once.
    released = fold.release()
    assert [h.parts[0][1] for h in released] == [docs[0]]
    assert fold.held_offsets() == {("t", 1): 7}
    # A late second receipt of a released event is written at once, not held.
    assert not fold.fold_receipt(_record("r", 0, 4), update)

    # Partition t/1 moves away: its event goes with it, nothing of it stays held.
    fold.forget({("t", 0), ("r", 0)})
    assert len(fold) == 0 and fold.held_offsets() == {}

    for i, doc in enumerate(docs):
        fold.hold_event(_record("t", 0, 10 + i), doc, None)
    # Over the cap of two: the oldest leaves first.
    assert [h.parts[0][0].offset for h in fold.release()] == [10]
    now[0] += 10.0
    assert fold.due() and len(fold.release()) == 2


def test_a_receipt_read_before_its_event_waits_for_it() -> None:
    now = [0.0]
    fold = ReceiptFold(window_s=10.0, max_docs=100, clock=lambda: now[0])
    doc = event_document(example_event("playback.progress"), None, secret=SECRET)
    update = LineageUpdate(doc.doc_id, doc.bucket,
                           {"redis": {"status": "stored", "processed_at": "x"}})
    assert fold.fold_receipt(_record("r", 0, 3), update)
    assert fold.release() == [], "a receipt alone is not a complete document"
    assert fold.hold_event(_record("t", 0, 8), doc, None)
    [held] = fold.release()
    assert [item for _, item in held.parts] == [update, doc]
    # Without its event, a receipt leaves when the window ends.
    other = LineageUpdate("e2", doc.bucket, {"redis": {"status": "stored",
                                                       "processed_at": "x"}})
    assert fold.fold_receipt(_record("r", 0, 4), other)
    now[0] += 10.0
    assert [h.parts for h in fold.release()] == [[(_record("r", 0, 4), other)]]


def test_a_receipt_kept_when_its_events_partition_moves_is_written_next() -> None:
    now = [0.0]
    fold = ReceiptFold(window_s=10.0, max_docs=100, clock=lambda: now[0])
    doc = event_document(example_event("rating.submitted"), None, secret=SECRET)
    fold.hold_event(_record("t", 0, 1), doc, None)
    fold.fold_receipt(_record("r", 2, 9), LineageUpdate(doc.doc_id, doc.bucket, {
        "postgres": {"status": "stored", "processed_at": "x"}}))
    fold.forget({("r", 2)})
    released = fold.release()
    assert len(released) == 1
    assert [rec.offset for rec, _ in released[0].parts] == [9]


def test_folding_off_writes_at_once() -> None:
    fold = ReceiptFold(window_s=0.0, max_docs=10)
    doc = event_document(example_event("playback.progress"), None, secret=SECRET)
    assert not fold.hold_event(_record("t", 0, 1), doc, None)
    assert len(fold) == 0


def test_behind_the_longer_window_holds_and_caught_up_the_short_one_releases() -> None:
    now = [0.0]
    fold = ReceiptFold(window_s=2.0, max_docs=100, backlog_window_s=30.0,
                       clock=lambda: now[0])
    doc = event_document(example_event("playback.progress"), None, secret=SECRET)
    fold.behind(True)
    assert fold.hold_event(_record("t", 0, 1), doc, None)
    now[0] += 5.0
    assert not fold.due() and fold.release() == [], (
        "behind, a document waits past the short window for its receipts")
    now[0] += 26.0
    assert fold.due() and len(fold.release()) == 1, "the backlog window ends too"

    other = event_document(example_event("playback.progress"), None, secret=SECRET)
    assert fold.hold_event(_record("t", 0, 2), other, None)
    now[0] += 5.0
    assert fold.release() == []
    fold.behind(False)
    assert fold.due() and len(fold.release()) == 1, "caught up, the short window applies"


def test_a_full_poll_makes_the_auditor_hold_longer() -> None:
    bus, index = Bus(), CountingIndex()
    first = [example_event("playback.progress") for _ in range(4)]
    then = [example_event("playback.progress") for _ in range(4)]
    bus.publish(*first)
    config = AuditConfig(batch_size=4, linger_s=0.005, fold_window_s=0.01,
                         fold_backlog_window_s=30.0)
    worker = bus.auditor(index, "audit-behind", config=config)
    worker.step()
    time.sleep(0.02)
    bus.publish(*then)
    worker.step()
    assert index.items == [] and worker.handler.waiting == 8, (
        "the polls were full: past the short window, the documents wait for their receipts")
    for env in first + then:
        receipts_for(bus, env)
    drain(worker)
    assert worker.handler.waiting == 0 and bus.lag("audit-behind") == 0
    assert len(index.items) == 8 and all(isinstance(i, EventDoc) for i in index.items)

    # Caught up (an empty poll), the short window applies again.
    late = example_event("playback.progress")
    bus.publish(late)
    worker.step()
    assert worker.handler.waiting == 1
    time.sleep(0.02)
    worker.step()
    assert worker.handler.waiting == 0 and index.get(late.event_id) is not None
