"""What the two catalog stores share that is neither a rule nor driver code.

* MongoDB's names for the catalog: the in-memory store keeps the very documents MongoDB holds
  under the same names, so that the snapshots of both stores compare key by key.
* :func:`plan_writes`, the domain's :func:`~polystream.domain.catalog_rules.plan_batch` with
  its refusal of corrupt uploads turned into the worker's ``PermanentStoreError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from polystream.domain.catalog import CorruptUpload
from polystream.domain.catalog_rules import CatalogPlan, CatalogState, plan_batch
from polystream.domain.events import AnyEvent
from polystream.store_errors import PermanentStoreError

TITLES: Final = "titles"
RELATIONS: Final = "relations"
ASSETS_BUCKET: Final = "assets"
ASSET_FILES: Final = f"{ASSETS_BUCKET}.files"
ASSET_CHUNKS: Final = f"{ASSETS_BUCKET}.chunks"


def plan_writes(events: Sequence[AnyEvent], state: CatalogState) -> CatalogPlan:
    """The batch's plan; an upload whose bytes do not match its checksum can never be
    stored, so it is dead-lettered (:class:`PermanentStoreError`) before anything is written."""
    try:
        return plan_batch(events, state)
    except CorruptUpload as exc:
        raise PermanentStoreError(exc.event_id, exc.reason) from None


__all__ = ["ASSETS_BUCKET", "ASSET_CHUNKS", "ASSET_FILES", "RELATIONS", "TITLES", "plan_writes"]
