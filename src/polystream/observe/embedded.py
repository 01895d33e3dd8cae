"""The observatory of the embedded platform: the in-memory broker and stores, read directly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from polystream.bus.memory import InMemoryBroker
from polystream.bus.topology import CONSUMER_GROUPS
from polystream.embedded import EmbeddedPlatform
from polystream.observe.observatory import Observatory


class MemoryBus:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    def end_offsets(self, topics: list[str]) -> dict[str, dict[int, int]]:
        known = self._broker.topics()
        return {t: self._broker.end_offsets(t) for t in topics if t in known}

    def group_lag(self, group_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
        return self._broker.group_lag(group_id, topics)


class _Sizes:
    def __init__(self, name: str, role: str, sizes: Callable[[], dict[str, int]]) -> None:
        self.name, self.role, self._sizes = name, role, sizes

    def sizes(self) -> dict[str, int]:
        return self._sizes()


def _counts(tables: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, int]:
    return {name: len(rows) for name, rows in tables.items() if name not in skip}


def _kinds(dump: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {"keys": len(dump)}
    for kind, _value, _expiry in dump.values():
        out[kind] = out.get(kind, 0) + 1
    return out


def embedded_observatory(platform: EmbeddedPlatform,
                         clock: Callable[[], datetime] | None = None) -> Observatory:
    """``clock``: the simulated "now" (the demo's stream runs ahead of the wall clock)."""
    p = platform
    stores = [
        _Sizes("postgres", "accounts (in memory)",
               lambda: _counts(p.accounts.dump(), frozenset({"processed_events"}))),
        _Sizes("mongo", "catalog (in memory)", lambda: _counts(p.catalog.snapshot())),
        _Sizes("redis", "live state (in memory)", lambda: _kinds(p.live.dump())),
        _Sizes("audit", "audit index (in memory)", lambda: {"documents": p.audit.count()}),
    ]
    obs = Observatory(bus=MemoryBus(p.broker), groups=dict(CONSUMER_GROUPS), stores=stores,
                      live=p.live, catalog=p.catalog, audit=p.audit)
    if clock is not None:
        obs.clock = clock
    return obs


