"""The audit and GridFS checks of `verify` on the in-memory stores (no servers): the same
functions the stack tests run against OpenSearch and FerretDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polystream.audit.documents import (
    bucket_end,
    bucket_for_event,
    event_document,
    lineage_entry,
    lineage_update,
)
from polystream.audit.fold import expected_receipts
from polystream.audit.memory import InMemoryAuditIndex
from polystream.domain.events import AnyEvent, Receipt, ReceiptStatus, Sink, decode
from polystream.simulate import SimConfig, generate
from polystream.verify import Scope, expected_state
from polystream.verify_audit import AuditDoc, audit_documents, check_audit
from polystream.verify_gridfs import Chunk, Inventory, check_gridfs, memory_inventory, problems

SECRET = b"verify-test-secret"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _events(n: int = 400) -> list[AnyEvent]:
    return [decode(ev.value) for ev in generate(SimConfig(seed=3, users=10, titles=10), limit=n)]


def _audited(events: list[AnyEvent]) -> InMemoryAuditIndex:
    """What the auditor leaves once every store's receipt is in."""
    index = InMemoryAuditIndex()
    receipts = expected_receipts()
    items: list[Any] = []
    for env in events:
        items.append(event_document(env, None, secret=SECRET, now=NOW))
        for sink in sorted(receipts.get(env.type, frozenset())):
            items.append(lineage_update(Receipt(
                event_id=env.event_id, event_type=env.type, sink=Sink(sink),
                status=ReceiptStatus.STORED, processed_at=NOW)))
    assert index.index_batch(items) == []
    return index


def test_a_complete_audit_index_matches() -> None:
    events = _events()
    diff = check_audit(events, audit_documents(_audited(events)))
    assert diff.ok, diff.samples
    assert diff.expected == diff.actual == len(events)


def test_missing_duplicated_and_incomplete_audit_documents_are_named() -> None:
    events = _events()
    docs = list(audit_documents(_audited(events)))
    gone, doubled, bare = (str(e.event_id) for e in events[:3])
    kept = [d for d in docs if d.doc_id != gone]
    copy = next(d for d in docs if d.doc_id == doubled)
    kept.append(AuditDoc("other-index", copy.doc_id, copy.source))
    kept = [AuditDoc(d.index, d.doc_id, {**d.source, "lineage": {}}) if d.doc_id == bare else d
            for d in kept]
    diff = check_audit(events, kept)
    assert (diff.missing, diff.unexpected, diff.stale) == (1, 1, 1)
    assert f"missing audit document of {events[0].type} {gone}" in diff.samples
    assert any(s.startswith(f"duplicated audit document of {doubled}: 2 (") for s in diff.samples)
    assert any(s.startswith(f"incomplete audit document of {events[2].type} {bare}: no "
                            "receipt of audit") for s in diff.samples)


def test_a_dead_lettered_event_needs_its_dead_letter_document() -> None:
    events = _events(50)
    docs = list(audit_documents(_audited(events)))
    target = str(events[0].event_id)
    sink = sorted(expected_receipts()[events[0].type])[0]
    entry = lineage_entry(ReceiptStatus.DEAD_LETTERED, NOW, events[0].type, "nul character")
    docs = [AuditDoc(d.index, d.doc_id, {**d.source, "lineage": {
        **d.source["lineage"], sink: entry}}) if d.doc_id == target else d for d in docs]
    diff = check_audit(events, docs)
    assert diff.stale == 1 and diff.notes == {"dead_lettered": 1, "expired": 0}
    assert f"dead-lettered by {sink} but no dead-letter document" in diff.samples[0]
    dead_letter = AuditDoc("idx", f"dl:t:0:1:{sink}", {
        "kind": "dead_letter", "event_id": target, "dead_letter": {"consumer": sink}})
    diff = check_audit(events, [*docs, dead_letter])
    assert diff.ok and diff.notes == {"dead_lettered": 1, "expired": 0}


def test_the_reference_catalog_has_whole_files_and_no_orphans() -> None:
    events = _events()
    ref = expected_state(events)
    inventory = memory_inventory(ref.catalog)
    assert inventory.files and inventory.chunks
    assert [p for p in problems(inventory) if p.kind != "unreferenced"] == []
    diff = check_gridfs(inventory, inventory, scope=Scope.of(events))
    assert diff.ok and diff.expected == diff.actual == len(inventory.files)


def _damaged(inventory: Inventory, **changes: Any) -> Inventory:
    return Inventory(changes.get("files", inventory.files),
                     changes.get("chunks", inventory.chunks),
                     changes.get("titles", inventory.titles))


def test_gridfs_damage_is_found_in_the_in_memory_store() -> None:
    events = _events()
    ref = memory_inventory(expected_state(events).catalog)
    scope = Scope.of(events)
    poster = ref.files[0]
    fid = str(poster["_id"])
    orphan = _damaged(ref, chunks=[*ref.chunks, Chunk("ghost", 0, b"x")])
    diff = check_gridfs(orphan, ref, scope=scope)
    assert diff.unexpected == 1
    assert diff.samples == ["orphaned chunk(s) of ghost: n=[0], no files doc"]
    holed = _damaged(ref, chunks=[c for c in ref.chunks if not (c.files_id == fid and c.n == 0)])
    diff = check_gridfs(holed, ref, scope=scope)
    assert diff.stale == 1 and f"file {fid} has chunks" in diff.samples[0]
    assert "missing n=[0]" in diff.samples[0]
    flipped = _damaged(ref, chunks=[Chunk(c.files_id, c.n, c.data[::-1])
                                    if c.files_id == fid else c for c in ref.chunks])
    diff = check_gridfs(flipped, ref, scope=scope)
    assert diff.stale == 1 and "instead of" in diff.samples[0]
    title = str(poster["metadata"]["title_id"])
    untitled = _damaged(ref, titles=ref.titles - {title})
    diff = check_gridfs(untitled, ref, scope=scope)
    assert diff.stale >= 1
    assert f"file {fid} names title {title} that the catalog does not hold" in diff.samples


def test_an_invalid_record_of_the_topics_needs_a_dead_letter_document() -> None:
    events = _events(50)
    docs = list(audit_documents(_audited(events)))
    diff = check_audit(events, docs, poison=[("polystream.users", 2, 40)])
    assert diff.missing == 1
    assert diff.samples == ["missing dead-letter document of the invalid record "
                            "polystream.users/2@40"]
    dead_letter = AuditDoc("idx", "dl:polystream.users:2:40:postgres", {
        "kind": "dead_letter", "dead_letter": {
            "consumer": "postgres", "original_topic": "polystream.users",
            "original_partition": 2, "original_offset": 40}})
    diff = check_audit(events, [*docs, dead_letter], poison=[("polystream.users", 2, 40)])
    assert diff.ok and diff.expected == diff.actual == len(events) + 1


def test_months_past_the_retention_are_not_looked_for() -> None:
    events = _events()
    index = _audited(events)
    buckets = sorted({bucket_for_event(e.event_id) for e in events})
    last_end = bucket_end(buckets[-1])
    assert last_end is not None
    # The auditor's retention deletes every month of these events ...
    deleted = index.apply_retention(last_end + timedelta(days=index.retention_days))
    assert deleted == buckets
    assert check_audit(events, audit_documents(index)).missing == len(events)
    # ... and verify told a cutoff just before the last month ended still looks for it ...
    early = check_audit(events, audit_documents(index),
                        retention_cutoff=last_end - timedelta(seconds=1))
    in_last = sum(1 for e in events if bucket_for_event(e.event_id) == buckets[-1])
    assert early.missing == in_last > 0
    # ... while the auditor's own cutoff skips them all, counted.
    diff = check_audit(events, audit_documents(index), retention_cutoff=last_end)
    assert diff.ok, diff.samples
    assert diff.notes["expired"] == len(events)
    assert diff.expected == 0
