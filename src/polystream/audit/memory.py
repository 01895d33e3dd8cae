"""`AuditIndex` in process memory, for unit tests and as the engine of `JsonlAuditIndex`.

It keeps the exact semantics of the OpenSearch adapter where callers can tell: documents live
per time bucket (``_id`` unique per bucket, like per index), writes merge with
`documents.apply_item` (the twin of the Painless script), unknown top-level fields are refused
like the strict mapping refuses them, and searches sort and paginate the same way.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from polystream.audit.documents import (
    DOC_FIELDS,
    AuditRecord,
    DocKind,
    EventDoc,
    IndexItem,
    anonymise_fields,
    apply_item,
    bucket_end,
    bucket_for_event,
    encode_cursor,
    epoch_ms,
    erasure_key,
    iso,
    parse_iso,
    tokens,
)
from polystream.audit.ports import (
    AuditPage,
    AuditQuery,
    IndexFailure,
    KeywordSearch,
)

Key = tuple[str, str]  # (bucket, doc_id)

#: Sort value of a document without ``occurred_at``: what OpenSearch reports for a missing
#: date in a descending sort, so both place such documents last.
MISSING_MS = -(2**63)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sort_key(doc: Mapping[str, Any]) -> tuple[int, str]:
    occurred = doc.get("occurred_at")
    ms = epoch_ms(parse_iso(occurred)) if isinstance(occurred, str) else MISSING_MS
    return ms, str(doc.get("doc_id", ""))


def matches(doc: Mapping[str, Any], query: AuditQuery) -> bool:
    kind = doc.get("kind")
    if query.kind is None:
        if kind is None:
            return False
    elif kind != query.kind.value:
        return False
    if query.user_id is not None and doc.get("user_id") != query.user_id:
        return False
    if query.type is not None and doc.get("type") != query.type:
        return False
    if query.event_id is not None and doc.get("event_id") != query.event_id:
        return False
    if query.since is not None or query.until is not None:
        occurred = doc.get("occurred_at")
        if not isinstance(occurred, str):
            return False
        # Millisecond precision, like OpenSearch's `date` type.
        ms = epoch_ms(parse_iso(occurred))
        if query.since is not None and ms < epoch_ms(query.since):
            return False
        if query.until is not None and ms >= epoch_ms(query.until):
            return False
    if query.text:
        wanted = tokens(query.text)
        if wanted and not wanted <= tokens(str(doc.get("text", ""))):
            return False
    return True


def public(doc: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord.model_validate({k: v for k, v in doc.items() if k != "text"})


class InMemoryAuditIndex(KeywordSearch):
    def __init__(self, *, retention_days: int = 90, clock: Clock = _utcnow) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.RLock()
        self._docs: dict[Key, dict[str, Any]] = {}
        self._erased: dict[str, str] = {}  # erasure key -> when

    # -- hooks for the JSONL index ----------------------------------------------------------

    def _sync(self) -> None:
        """Catch up with writes made elsewhere (another process's files)."""

    def _persist(self, changed: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Make changed documents durable (bucket, document)."""

    def _persist_erasure(self, key: str, when: str) -> None: ...

    def _rewrite(self, buckets: set[str], docs: Mapping[Key, dict[str, Any]]) -> None:
        """Documents were changed in place (erasure): ``docs`` is every document now, and no
        older version of those buckets may remain on disk."""

    def _drop(self, buckets: set[str]) -> None: ...

    # -- AuditIndex ---------------------------------------------------------------------------

    def ensure(self) -> None:
        pass

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        self._sync()
        failures: list[IndexFailure] = []
        changed: dict[Key, dict[str, Any]] = {}
        now = self._clock()
        with self._lock:
            for item in items:
                if isinstance(item, EventDoc):
                    unknown = sorted(set(item.fields) - DOC_FIELDS)
                    if unknown:
                        failures.append(IndexFailure(
                            item, 400, f"strict_dynamic_mapping_exception: fields {unknown} "
                            "are not in the mapping", retryable=False))
                        continue
                key = (item.bucket, item.doc_id)
                doc = apply_item(changed.get(key, self._docs.get(key)), item, now)
                if doc is not None:
                    changed[key] = doc
            if changed:
                # Durable first: if persisting fails, memory must not claim what disk lacks
                # (the retried batch would find nothing to change and never write it).
                self._persist([(bucket, doc) for (bucket, _), doc in changed.items()])
                self._docs.update(changed)
        return failures

    def _select(self, query: AuditQuery) -> list[dict[str, Any]]:
        self._sync()
        with self._lock:
            found = [doc for doc in self._docs.values() if matches(doc, query)]
        found.sort(key=sort_key, reverse=True)
        return found

    def _page(self, query: AuditQuery, size: int, after: tuple[int, str] | None) -> AuditPage:
        found = self._select(query)
        total = len(found)
        if after is not None:
            found = [doc for doc in found if sort_key(doc) < after]
        page = found[:size]
        next_cursor = encode_cursor(sort_key(page[-1])) if len(found) > size else None
        return AuditPage([public(doc) for doc in page], total, next_cursor)

    def get(self, event_id: str | UUID) -> AuditRecord | None:
        self._sync()
        doc_id = str(event_id)
        with self._lock:
            doc = self._docs.get((bucket_for_event(doc_id), doc_id))
            if doc is None:
                return None
            record = public(doc)
        letters = self._select(AuditQuery(kind=DocKind.DEAD_LETTER, event_id=doc_id))
        record.dead_letters = [public(letter) for letter in letters[:20]]
        return record

    def count(self, query: AuditQuery | None = None) -> int:
        return len(self._select(query or AuditQuery(kind=DocKind.EVENT)))

    def erase_user(self, user_id: str) -> int:
        self._sync()
        key = erasure_key(user_id)
        with self._lock:
            if key not in self._erased:
                when = iso(self._clock())
                self._persist_erasure(key, when)
                self._erased[key] = when
            updated = {
                doc_key: anonymise_fields(doc)
                for doc_key, doc in self._docs.items()
                if doc.get("user_id") == user_id
            }
            if updated:
                docs = {**self._docs, **updated}
                self._rewrite({bucket for bucket, _ in updated}, docs)
                self._docs = docs
            return len(updated)

    def erased_users(self, user_ids: Iterable[str]) -> set[str]:
        self._sync()
        with self._lock:
            return {user for user in user_ids if erasure_key(user) in self._erased}

    def apply_retention(self, now: datetime) -> list[str]:
        cutoff = now - timedelta(days=self.retention_days)
        with self._lock:
            buckets = {bucket for bucket, _ in self._docs}
            old = {b for b in buckets if (end := bucket_end(b)) is not None and end <= cutoff}
            self._drop(old)
            if old:
                self._docs = {k: v for k, v in self._docs.items() if k[0] not in old}
            return sorted(old)

    def export(self) -> list[tuple[str, dict[str, Any]]]:
        """Every stored document with its bucket (copies), for backfilling another index."""
        self._sync()
        with self._lock:
            return [(bucket, copy.deepcopy(doc)) for (bucket, _), doc in sorted(self._docs.items())]

    def refresh(self) -> None:
        self._sync()

    def close(self) -> None:
        pass
