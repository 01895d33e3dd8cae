"""The Redis sink's store in one process, for the embedded mode and for tests.

It keeps the very key layout of :class:`~polystream.sinks.redis_live.RedisLiveStore` (see
:mod:`~polystream.sinks.live_keys`) in a :class:`~polystream.sinks.live_keyspace.Keyspace`,
with Redis's expiry rules driven by an injectable clock, and applies each event with
:mod:`~polystream.sinks.memory_live_apply`, the Lua script's steps in Python over the rules of
:mod:`polystream.domain.live`. One layout for both means :meth:`InMemoryLiveStore.dump` and
``RedisLiveStore.dump`` can be compared key for key, which is how the contract tests keep the
two from drifting apart.

Differences, deliberate: the time of expiry is the injected clock, not a server's; markers are
forgotten by a periodic sweep rather than by Redis's active expiry; a step that fails raises at
once, where the real store finishes the events already sent before raising (the worker
re-applies those, as duplicates, either way).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from polystream.domain import live
from polystream.domain.events import AnyEvent, Genre, PlanCode, Sink
from polystream.domain.live import DumpEntry, LiveStoreConfig
from polystream.domain.live_fields import (
    continue_items,
    event_fields,
    stars_of,
    viewing_from_hash,
)
from polystream.domain.outcomes import Outcome, rejected
from polystream.domain.reads import ContinueItem, ViewingSession
from polystream.sinks.live_keys import checked_prefix, flags_parts, top_rated_parts
from polystream.sinks.live_keyspace import Keyspace, zrev_order
from polystream.sinks.memory_live_apply import Apply
from polystream.store_errors import PermanentStoreError

_SWEEP_EVERY: Final = 10_000


class InMemoryLiveStore:
    """:class:`~polystream.sinks.redis_live.RedisLiveStore` without a server.

    ``clock`` is the wall clock of expiry and the default ``now`` of the reads (Redis's own
    clock plays that part for the real store). Thread-safe: one lock around every call.
    """

    sink: Sink = Sink.REDIS

    def __init__(
        self,
        *,
        prefix: str = "ps",
        config: LiveStoreConfig | None = None,
        clock: Callable[[], datetime] = live.utc_now,
    ) -> None:
        self.prefix = checked_prefix(prefix)
        self.config = config or LiveStoreConfig()
        self._clock = clock
        self._ks = Keyspace()
        self._lock = threading.RLock()
        self._since_sweep = 0

    def close(self) -> None:
        pass

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _tick(self) -> int:
        self._ks.now = live.to_ms(self._clock())
        return self._ks.now

    def _now_ms(self, now: datetime | None) -> int:
        tick = self._tick()
        return tick if now is None else live.to_ms(now)

    # --- write side ----------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        outcomes: list[Outcome] = []
        waiting: set[str] | None = set() if allow_defer else None
        with self._lock:
            for event in events:
                fields = event_fields(event)
                if fields is None:
                    outcomes.append(rejected(live.NOT_CONSUMED))
                    continue
                self._tick()
                model = type(event.payload)
                code = Apply(self._ks, self.prefix, self.config, model, fields, waiting).run()
                if code.startswith("e"):
                    raise PermanentStoreError(event.event_id, code[1:])
                outcomes.append(live.outcome_of(code))
            self._since_sweep += len(events)
            if self._since_sweep >= _SWEEP_EVERY:
                self._since_sweep = 0
                self._ks.sweep()
        return outcomes

    # --- read side -----------------------------------------------------------------------

    def viewing_session(self, viewing_session_id: str) -> ViewingSession | None:
        with self._lock:
            self._tick()
            h = self._ks.hgetall(self._k("viewing", viewing_session_id))
        return viewing_from_hash(viewing_session_id, h) if h else None

    def active_streams(self, user_id: str, now: datetime | None = None) -> list[str]:
        with self._lock:
            since = live.active_since(self._now_ms(now), self.config)
            rows = self._ks.zrev(self._k("streams", user_id))
        return [vs for vs, score in rows if score >= since]

    def active_streams_total(self, now: datetime | None = None) -> int:
        with self._lock:
            since = live.active_since(self._now_ms(now), self.config)
            rows = self._ks.zitems(self._k("streams", "_all"))
        return sum(1 for _, score in rows if score >= since)

    def continue_watching(self, user_id: str, limit: int = 20) -> list[ContinueItem]:
        key = self._k("continue", user_id)
        with self._lock:
            self._tick()
            titles = [title for title, _ in self._ks.zrev(key)[:limit]]
            entries = self._ks.hmget(key + ":pos", *titles)
        return continue_items(titles, entries)

    def top_rated(
        self, limit: int = 10, genre: Genre | str | None = None
    ) -> list[tuple[str, float]]:
        key = self._k(*top_rated_parts(genre))
        with self._lock:
            self._tick()
            return self._ks.zrev(key)[:limit]

    def most_watched(
        self, day: date, limit: int = 10, genre: Genre | str | None = None
    ) -> list[tuple[str, int]]:
        with self._lock:
            self._tick()
            rows = self._combined({self._k("rank", "watched", day.isoformat()): 1.0}, genre)
        return [(title, int(score)) for title, score in rows[:limit]]

    def trending(
        self, limit: int = 10, now: datetime | None = None, genre: Genre | str | None = None
    ) -> list[tuple[str, float]]:
        with self._lock:
            weights = live.trending_weights(self._now_ms(now), self.config)
            keys = {self._k("rank", "watched", day): weight for day, weight in weights}
            return self._combined(keys, genre)[:limit]

    def _combined(
        self, weighted: Mapping[str, float], genre: Genre | str | None
    ) -> list[tuple[str, float]]:
        totals: dict[str, float] = {}
        for key, weight in weighted.items():
            for member, score in self._ks.zitems(key):
                totals[member] = totals.get(member, 0.0) + score * weight
        if genre is not None:
            members = self._ks.smembers(self._k("genre", str(genre)))
            totals = {member: score for member, score in totals.items() if member in members}
        return zrev_order(totals.items())

    def flags(self, scope: str = "global") -> dict[str, Any]:
        key = self._k(*flags_parts(live.scope_user(scope)))
        with self._lock:
            self._tick()
            raw = self._ks.hgetall(key)
        return {name: json.loads(value) for name, value in raw.items()}

    def counter(self, name: str) -> int:
        with self._lock:
            self._tick()
            value = self._ks.get(self._k("counter", name))
        return int(value) if value is not None else 0

    def plan_of(self, user_id: str, now: datetime | None = None) -> PlanCode | None:
        with self._lock:
            now_ms = self._now_ms(now)
            plan, status, ends_at = self._ks.hmget(
                self._k("plan", user_id), "plan", "status", "ends_at"
            )
        return live.current_plan(plan, status, ends_at, now_ms)

    def title_rating(self, title_id: str) -> tuple[int, int]:
        with self._lock:
            self._tick()
            total, count = self._ks.hmget(self._k("ratings", title_id), "sum", "count")
        return int(count or 0), int(total or 0)

    def user_rating(self, user_id: str, title_id: str) -> int | None:
        with self._lock:
            self._tick()
            return stars_of(self._ks.hget(self._k("rating", user_id), title_id))

    def title_version(self, title_id: str) -> int | None:
        with self._lock:
            self._tick()
            value = self._ks.get(self._k("title", "version", title_id))
        return int(value) if value is not None else None

    def title_removed(self, title_id: str) -> bool:
        with self._lock:
            self._tick()
            return self._ks.exists(self._k("title", "removed", title_id))

    def title_genres(self, title_id: str) -> set[str]:
        with self._lock:
            self._tick()
            return self._ks.smembers(self._k("title", "genres", title_id))

    def genre_titles(self, genre: Genre | str) -> set[str]:
        with self._lock:
            self._tick()
            return self._ks.smembers(self._k("genre", str(genre)))

    def login_sessions(self, user_id: str, now: datetime | None = None) -> list[str]:
        with self._lock:
            now_ms = self._now_ms(now)
            rows = self._ks.zitems(self._k("sessions", user_id))
        return [sid for sid, expires in rows if expires > now_ms]

    # --- catalog cache -------------------------------------------------------------------

    def put_cached_title(self, title_id: str, value: str, ttl_s: int = 300) -> None:
        with self._lock:
            self._tick()
            self._ks.set_str(self._k("cache", "title", title_id), value, ex_ms=ttl_s * 1000)

    def cached_title(self, title_id: str) -> str | None:
        with self._lock:
            self._tick()
            return self._ks.get(self._k("cache", "title", title_id))

    def catalog_version(self) -> int:
        with self._lock:
            self._tick()
            value = self._ks.get(self._k("cache", "catalog", "version"))
        return int(value) if value is not None else 0

    def title_versions(self, title_ids: Sequence[str]) -> list[int | None]:
        with self._lock:
            self._tick()
            values = [self._ks.get(self._k("title", "version", t)) for t in title_ids]
        return [int(value) if value is not None else None for value in values]

    def cache_read(self, kind: str, key: str) -> tuple[str | None, str]:
        with self._lock:
            self._tick()
            return self._ks.get(self._k("cache", kind, key)), self._cache_version()

    def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: str
                    ) -> bool:
        with self._lock:
            self._tick()
            if self._cache_version() != if_version:
                return False
            self._ks.set_str(self._k("cache", kind, key), value, ex_ms=ttl_s * 1000)
            return True

    def invalidate_titles(self, title_ids: Sequence[str]) -> None:
        with self._lock:
            self._tick()
            for title_id in title_ids:
                self._ks.delete(self._k("cache", "title", title_id))
            self._ks.incr(self._k("cache", "catalog", "mongo"))

    def _cache_version(self) -> str:
        return live.cache_version(self._ks.get(self._k("cache", "catalog", "version")),
                             self._ks.get(self._k("cache", "catalog", "mongo")))

    # --- whole-prefix operations ---------------------------------------------------------

    def dump(self) -> dict[str, DumpEntry]:
        """Same shape as ``RedisLiveStore.dump``."""
        cut = len(self.prefix) + 1
        result: dict[str, DumpEntry] = {}
        with self._lock:
            self._tick()
            for key in sorted(self._ks.data):
                if not self._ks.live(key):
                    continue
                kind = self._ks.kind(key)
                value: Any = self._ks.data[key]
                if kind == "set":
                    value = sorted(value)
                elif kind in ("hash", "zset"):
                    value = dict(value)
                result[key[cut:]] = (kind, value, self._ks.expires.get(key))
        return result

    def clear(self) -> int:
        with self._lock:
            count = len(self._ks.data)
            self._ks = Keyspace()
        return count


__all__ = ["InMemoryLiveStore"]
