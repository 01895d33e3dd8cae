"""The MongoDB sink's side of cache invalidation.

The Redis sink invalidates the catalog cache when *it* applies a ``catalog.title_*`` event,
but the two sinks run apart: when MongoDB stores a title change after Redis applied it, a
reader in between found the old document (and, rightly, did not cache it, see
:mod:`polystream.reads.service`), and a page built then may lack a new title. Invalidating
again once MongoDB holds the change closes that window instead of leaving it to the TTL.

The wrapper changes nothing about the store's outcomes. Invalidation is best effort: a
failure is logged and the entries expire with their TTL; failing the batch would stop the
catalog sink whenever Redis hiccups, for the sake of a cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from polystream.domain.events import AnyEvent, ReceiptStatus, Sink, TitleRemoved, TitleUpserted
from polystream.sinks.ports import EventStore, Outcome
from polystream.store_errors import StoreError

log = logging.getLogger("polystream.reads.invalidation")


class TitleCacheInvalidator(Protocol):
    def invalidate_titles(self, title_ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class CacheInvalidatingStore:
    """``store`` (the catalog's), invalidating the cache of the titles each batch stored."""

    def __init__(self, store: EventStore, invalidator: TitleCacheInvalidator,
                 *, owns_invalidator: bool = False) -> None:
        self.store = store
        self.sink: Sink = store.sink
        self._invalidator = invalidator
        self._owns_invalidator = owns_invalidator

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        outcomes = self.store.apply(events, allow_defer=allow_defer)
        changed = sorted({
            event.payload.title_id
            for event, outcome in zip(events, outcomes, strict=True)
            if outcome.status is ReceiptStatus.STORED
            and isinstance(event.payload, (TitleUpserted, TitleRemoved))
        })
        if changed:
            try:
                self._invalidator.invalidate_titles(changed)
            except StoreError as exc:
                log.warning("cache invalidation of %d titles failed (their entries expire "
                            "with the TTL): %s", len(changed), exc)
        return outcomes

    def close(self) -> None:
        self.store.close()
        if self._owns_invalidator:
            self._invalidator.close()


__all__ = ["CacheInvalidatingStore", "TitleCacheInvalidator"]
