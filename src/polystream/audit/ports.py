"""What the audit trail needs from a search engine, whatever the engine is.

Three implementations pass the same contract tests (`tests/audit/test_index_contract.py`):
`OpenSearchAuditIndex` (the real stack), `JsonlAuditIndex` (rotating JSON-lines files, when the
search engine is disabled by settings) and `InMemoryAuditIndex` (unit tests).

Write semantics every implementation must keep, because the auditor's delivery guarantees rest
on them (DESIGN.md §4):

* A document's id is the event id (``_id`` = event id), so redelivery and replay never
  duplicate anything; writing the same item twice leaves the document unchanged.
* An `EventDoc` replaces the document's top-level fields but never its ``lineage`` (it only
  merges the entries it carries); a `LineageUpdate` touches only the lineage entries of the
  sinks it carries. So a receipt that arrives before its event, or after, ends in the same
  document.
* Per sink, the lineage keeps the *first decisive* receipt: a ``duplicate`` receipt (from a
  replay of that sink) never replaces a real outcome, and among equals the earliest
  ``processed_at`` wins. That makes the merge order-independent.
* Once a user is erased, no write can bring their personal data back (`erase_user`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypedDict, Unpack
from uuid import UUID

from polystream.audit.documents import AuditRecord, DocKind, IndexItem, decode_cursor


class AuditIndexError(RuntimeError):
    """The index refused an operation for a reason retrying will not fix (bad query, mapping)."""


class AuditIndexUnavailable(AuditIndexError):
    """The index cannot be reached or is overloaded: retry later, skip nothing."""


class InvalidCursor(AuditIndexError):
    """A pagination cursor that this index did not produce."""


@dataclass(frozen=True, slots=True)
class IndexFailure:
    """One item of a bulk the index did not apply."""

    item: IndexItem
    status: int
    reason: str
    #: True for overload/conflict (retry the item), False for a document the index will never
    #: accept (dead-letter its record).
    retryable: bool


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters shared by `search` and `count`. Every filter is optional; they combine with AND.

    ``since`` is inclusive and ``until`` exclusive, on ``occurred_at``. ``text`` matches
    documents holding every word of it (case-insensitive) in their free-text field.
    ``kind`` None means events and dead letters (never lineage-only documents whose event has
    not arrived yet).
    """

    user_id: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    kind: DocKind | None = None
    event_id: str | None = None


class AuditFilters(TypedDict, total=False):
    """The filters `AuditIndex.search` takes as keywords: those of `AuditQuery` but the event
    id (`get` finds one event)."""

    user_id: str | None
    type: str | None
    since: datetime | None
    until: datetime | None
    text: str | None
    kind: DocKind | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditRecord]
    total: int
    #: Pass it back as ``cursor`` for the next page; None on the last page.
    next_cursor: str | None = None


#: Largest page a search returns.
MAX_PAGE_SIZE = 500


class AuditIndex(Protocol):
    def ensure(self) -> None:
        """Create what the index needs (templates, aliases, scripts, folders); idempotent."""
        ...

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        """Apply the items durably, in order; return the ones not applied (possibly empty).

        Raises `AuditIndexUnavailable` when nothing could be sent (connection refused,
        timeout); then none, some or all items may have been applied, and applying them again
        is harmless.
        """
        ...

    def search(
        self, *, size: int = 50, cursor: str | None = None, **filters: Unpack[AuditFilters]
    ) -> AuditPage:
        """Newest first (``occurred_at``, then document id); ``cursor`` continues a search."""
        ...

    def get(self, event_id: str | UUID) -> AuditRecord | None:
        """The event's document with its lineage, and the dead letters that name the event."""
        ...

    def count(self, query: AuditQuery | None = None) -> int:
        """Documents matching ``query``; by default, event documents (one per event)."""
        ...

    def erase_user(self, user_id: str) -> int:
        """Anonymise every document of ``user_id`` and remember the erasure, so documents of
        that user indexed later are anonymised too. Returns the documents changed now."""
        ...

    def erased_users(self, user_ids: Iterable[str]) -> set[str]:
        """Those of ``user_ids`` that were erased."""
        ...

    def apply_retention(self, now: datetime) -> list[str]:
        """Delete the time buckets entirely older than the retention period; their names."""
        ...

    def refresh(self) -> None:
        """Make every applied write visible to `search` and `count` (tests, CLI)."""
        ...

    def close(self) -> None: ...


class KeywordSearch(ABC):
    """`AuditIndex.search` for every index: the size and cursor are checked and the keywords
    become an `AuditQuery` here; an index only runs the query (`_page`)."""

    def search(
        self, *, size: int = 50, cursor: str | None = None, **filters: Unpack[AuditFilters]
    ) -> AuditPage:
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"size must be between 1 and {MAX_PAGE_SIZE}")
        after: tuple[int, str] | None = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except ValueError as exc:
                raise InvalidCursor(str(exc)) from None
        return self._page(AuditQuery(**filters), size, after)

    @abstractmethod
    def _page(self, query: AuditQuery, size: int, after: tuple[int, str] | None) -> AuditPage:
        """Up to ``size`` documents matching ``query``, newest first; with ``after`` (a
        decoded cursor), only those that sort after it."""
