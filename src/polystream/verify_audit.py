"""Reconcile the audit index with the events: one document per event, with its lineage.

The auditor folds every store's receipt into the event's document (`audit.documents`), so
after the pipeline has drained, each event of the input has exactly one document holding an
entry for the auditor and for every store that consumes its type. A store that dead-lettered
the event says so in that entry, and the dead letter has its own document naming the event.

Documents are grouped by the event id they carry, not by ``_id``: a copy of a document in
another index of the pattern (a rollover gone wrong, a bad reindex) has the same ``_id`` and
is a duplicate all the same.

Retention deletes whole months (the month of the event's UUIDv7 id): an event of a month the
retention has expired is not looked for, only counted (``expired``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from polystream.audit.documents import DocKind, bucket_end, bucket_for_event
from polystream.audit.fold import expected_receipts
from polystream.audit.ports import AuditIndex
from polystream.domain.events import AnyEvent, ReceiptStatus
from polystream.verify import Difference

#: The auditor's own lineage entry (`event_document(..., sink="audit")`).
AUDIT_SINK = "audit"


@dataclass(frozen=True, slots=True)
class AuditDoc:
    index: str
    doc_id: str
    source: Mapping[str, Any]


def audit_documents(index: AuditIndex) -> Iterator[AuditDoc]:
    """Every document of the index (free text and payload left out: never compared)."""
    index.refresh()
    export: Callable[[], list[tuple[str, dict[str, Any]]]] | None = getattr(
        index, "export", None)
    if export is not None:  # the in-process indexes (JSONL files, memory)
        for bucket, doc in export():
            yield AuditDoc(bucket, str(doc.get("doc_id")), doc)
        return
    from opensearchpy import helpers

    from polystream.audit.opensearch import OpenSearchAuditIndex

    if not isinstance(index, OpenSearchAuditIndex):
        raise TypeError(f"cannot list the documents of {type(index).__name__}")
    for hit in helpers.scan(index.client, index=index.pattern,
                            query={"query": {"match_all": {}}},
                            _source_excludes=["text", "payload"], size=1000):
        yield AuditDoc(hit["_index"], hit["_id"], hit["_source"])


Position = tuple[str, int, int]  # topic, partition, offset


def check_audit(events: Sequence[AnyEvent], docs: Iterable[AuditDoc], *,
                poison: Sequence[Position] = (), retention_cutoff: datetime | None = None,
                max_samples: int = 5) -> Difference:
    """The ``audit/documents`` part: expected = the events, found = their event documents;
    missing, duplicated (unexpected) and incomplete (stale: wrong type, a lineage entry
    missing, a dead-letter entry without its dead-letter document). ``poison``: records of
    the topics that are no valid event, each of which must have a dead-letter document.
    ``retention_cutoff``: events of months that ended by then are expired, not expected."""
    wanted = {str(env.event_id): env for env in events}
    expired: set[str] = set()
    if retention_cutoff is not None:
        for eid in list(wanted):
            end = bucket_end(bucket_for_event(eid))
            if end is not None and end <= retention_cutoff:
                del wanted[eid]
                expired.add(eid)
    by_event: dict[str, list[AuditDoc]] = {}
    dead_letters: dict[str, set[str | None]] = {}
    dead_positions: set[Position] = set()
    foreign = 0
    for doc in docs:
        if doc.source.get("kind") == DocKind.DEAD_LETTER.value:
            info = doc.source.get("dead_letter") or {}
            topic, part, offset = (info.get("original_topic"), info.get("original_partition"),
                                   info.get("original_offset"))
            if isinstance(topic, str) and isinstance(part, int) and isinstance(offset, int):
                dead_positions.add((topic, part, offset))
        event_id = doc.source.get("event_id")
        if not isinstance(event_id, str) or event_id not in wanted:
            # A document of an expired month the auditor has not deleted yet is no stranger.
            foreign += event_id not in expired
            continue
        if doc.source.get("kind") == DocKind.DEAD_LETTER.value:
            info = doc.source.get("dead_letter") or {}
            dead_letters.setdefault(event_id, set()).add(info.get("consumer"))
            continue
        by_event.setdefault(event_id, []).append(doc)
    receipts = expected_receipts()
    missing: list[str] = []
    duplicated: list[str] = []
    stale: list[str] = []
    dead_lettered = 0
    for event_id, env in wanted.items():
        found = by_event.get(event_id, [])
        if not found:
            missing.append(f"missing audit document of {env.type} {event_id}")
            continue
        if len(found) > 1:
            where = ", ".join(sorted(f"{d.index}/{d.doc_id}" for d in found))
            duplicated.append(f"duplicated audit document of {event_id}: {len(found)} ({where})")
        src = found[0].source
        problems: list[str] = []
        if src.get("kind") != DocKind.EVENT.value:
            problems.append("only receipts indexed, no event document")
        elif src.get("type") != env.type:
            problems.append(f"type {src.get('type')!r} instead of {env.type!r}")
        lineage = src.get("lineage") or {}
        sinks = sorted(receipts.get(env.type, frozenset()) | {AUDIT_SINK})
        absent = [s for s in sinks if s not in lineage]
        if absent:
            problems.append(f"no receipt of {', '.join(absent)} in its lineage")
        for sink, entry in sorted(lineage.items()):
            if isinstance(entry, Mapping) and entry.get("status") == (
                    ReceiptStatus.DEAD_LETTERED.value):
                dead_lettered += 1
                named = dead_letters.get(event_id, set())
                if sink not in named and None not in named:
                    problems.append(f"dead-lettered by {sink} but no dead-letter document")
        if problems:
            stale.append(f"incomplete audit document of {env.type} {event_id}: "
                         + "; ".join(problems))
    missing += [f"missing dead-letter document of the invalid record {t}/{p}@{o}"
                for t, p, o in poison if (t, p, o) not in dead_positions]
    samples = missing[:max_samples] + duplicated[:max_samples] + stale[:max_samples]
    diff = Difference("audit", "documents", len(wanted) + len(poison),
                      sum(len(v) for v in by_event.values())
                      + sum(1 for pos in poison if pos in dead_positions), samples, foreign)
    diff.missing, diff.unexpected, diff.stale = len(missing), len(duplicated), len(stale)
    diff.notes = {"dead_lettered": dead_lettered, "expired": len(expired)}
    return diff
