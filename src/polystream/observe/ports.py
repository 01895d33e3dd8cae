"""The ports the observatory reads through. The stores' own adapters already fit
`LiveReader` and `CatalogReader` (in-memory and real alike); the bus and the store sizes get
small probes of their own in `embedded.py` and `stack.py`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from polystream.domain.catalog import AssetInfo
from polystream.observe.model import StoreStatus


class BusProbe(Protocol):
    def end_offsets(self, topics: list[str]) -> dict[str, dict[int, int]]:
        """Topic -> partition -> next offset. Unknown topics are left out."""
        ...

    def group_lag(self, group_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> records the group has not committed."""
        ...


class StoreProbe(Protocol):
    name: str
    role: str

    def sizes(self) -> dict[str, int]:
        """What the store holds, by collection/table/kind; raises when it cannot answer."""
        ...


class LiveReader(Protocol):
    def top_rated(self, limit: int = 10) -> list[tuple[str, float]]: ...

    def trending(self, limit: int = 10, now: datetime | None = None) -> list[tuple[str, float]]:
        ...

    def most_watched(self, day: date, limit: int = 10) -> list[tuple[str, int]]: ...

    def active_streams_total(self, now: datetime | None = None) -> int: ...


class CatalogReader(Protocol):
    def get_title(self, title_id: str) -> dict[str, Any] | None: ...

    def list_assets(self, title_id: str) -> list[AssetInfo]: ...

    def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None: ...


def probe(store: StoreProbe) -> StoreStatus:
    """The store's status; a failing probe is an unhealthy store, not a failed snapshot."""
    try:
        return StoreStatus(name=store.name, role=store.role, healthy=True, sizes=store.sizes())
    except Exception as exc:
        return StoreStatus(name=store.name, role=store.role, healthy=False,
                           detail=f"{type(exc).__name__}: {exc}"[:300])
