"""The Redis sink's store in one process, for the embedded mode and for tests.

It keeps the very key layout of :class:`~polystream.sinks.redis_live.RedisLiveStore` (see that
module) in dictionaries, with Redis's expiry rules driven by an injectable clock, and each
event handler follows the Lua script of :mod:`~polystream.sinks.redis_scripts` step by step.
One layout for both means :meth:`InMemoryLiveStore.dump` and ``RedisLiveStore.dump`` can be
compared key for key, which is how the contract tests keep the two from drifting apart.

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

from polystream.domain import events as ev
from polystream.domain.events import PLANS, AnyEvent, Genre, Payload, PlanCode, Sink
from polystream.domain.reads import ContinueItem, ViewingSession
from polystream.sinks.ports import Outcome, rejected
from polystream.sinks.redis_live import (
    DAY_MS,
    DumpEntry,
    LiveStoreConfig,
    cache_version,
    checked_prefix,
    continue_items,
    event_fields,
    outcome_of,
    scope_user,
    stars_of,
    to_ms,
    top_rated_parts,
    trending_weights,
    utc_now,
    viewing_from_hash,
)
from polystream.store_errors import PermanentStoreError

_LIMITS: Final = {code.value: plan.max_streams for code, plan in PLANS.items()}
_PLAYBACK: Final[frozenset[type[Payload]]] = frozenset(
    {ev.PlaybackStarted, ev.PlaybackProgress, ev.PlaybackStopped}
)
_WAITING: Final = "wwaiting for an earlier event of this user"
#: Types without an ``applied:`` marker (the script's ``UNMARKED``): idempotent by state.
_UNMARKED: Final[frozenset[type[Payload]]] = frozenset({ev.PlaybackProgress})
_SWEEP_EVERY: Final = 10_000

_Value = str | dict[str, str] | set[str] | dict[str, float]


class _Keyspace:
    """The few Redis data types and commands the live store uses, over dicts.

    Values: ``str`` (string), ``dict[str, str]`` (hash), ``set[str]`` (set) and
    ``dict[str, float]`` (sorted set; ``zsets`` tells the two dict kinds apart). As in Redis,
    an aggregate that becomes empty disappears, and a key past its expiry does not exist.
    """

    def __init__(self) -> None:
        self.data: dict[str, _Value] = {}
        self.expires: dict[str, int] = {}
        self.zsets: set[str] = set()
        #: Milliseconds; set once per event, as Redis freezes time during a script.
        self.now = 0

    # -- generic --------------------------------------------------------------------------

    def live(self, key: str) -> bool:
        if key not in self.data:
            return False
        at = self.expires.get(key)
        if at is not None and self.now > at:
            self.delete(key)
            return False
        return True

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)
            self.expires.pop(key, None)
            self.zsets.discard(key)

    def exists(self, key: str) -> bool:
        return self.live(key)

    def pexpire(self, key: str, ms: float) -> None:
        if not self.live(key):
            return
        if ms <= 0:
            self.delete(key)  # as Redis does with an expiry that has already passed
        else:
            self.expires[key] = self.now + int(ms)

    def _tidy(self, key: str) -> None:
        if key in self.data and not self.data[key]:
            self.delete(key)

    def kind(self, key: str) -> str:
        value = self.data[key]
        if isinstance(value, str):
            return "string"
        if isinstance(value, set):
            return "set"
        return "zset" if key in self.zsets else "hash"

    # -- strings --------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        if not self.live(key):
            return None
        value = self.data[key]
        assert isinstance(value, str)
        return value

    def set_str(self, key: str, value: str, ex_ms: int | None = None) -> None:
        self.delete(key)  # SET drops the previous expiry
        self.data[key] = value
        if ex_ms is not None:
            self.expires[key] = self.now + ex_ms

    def incr(self, key: str) -> int:
        value = int(self.get(key) or 0) + 1
        self.data[key] = str(value)
        return value

    # -- hashes ---------------------------------------------------------------------------

    def _hash(self, key: str, create: bool = False) -> dict[str, str] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = {}
        value = self.data[key]
        assert isinstance(value, dict) and key not in self.zsets
        return value  # type: ignore[return-value]

    def hget(self, key: str, field: str) -> str | None:
        h = self._hash(key)
        return None if h is None else h.get(field)

    def hmget(self, key: str, *fields: str) -> list[str | None]:
        h = self._hash(key) or {}
        return [h.get(field) for field in fields]

    def hgetall(self, key: str) -> dict[str, str]:
        return dict(self._hash(key) or {})

    def hset(self, key: str, **fields: str) -> None:
        h = self._hash(key, create=True)
        assert h is not None
        h.update(fields)

    def hset_field(self, key: str, field: str, value: str) -> bool:
        """True when ``field`` is new (HSET's reply of 1)."""
        h = self._hash(key, create=True)
        assert h is not None
        created = field not in h
        h[field] = value
        return created

    def hdel(self, key: str, field: str) -> None:
        h = self._hash(key)
        if h is not None:
            h.pop(field, None)
            self._tidy(key)

    def hincrby(self, key: str, field: str, by: int) -> int:
        h = self._hash(key, create=True)
        assert h is not None
        value = int(h.get(field, "0")) + by
        h[field] = str(value)
        return value

    # -- sets -----------------------------------------------------------------------------

    def _set(self, key: str, create: bool = False) -> set[str] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = set()
        value = self.data[key]
        assert isinstance(value, set)
        return value

    def smembers(self, key: str) -> set[str]:
        return set(self._set(key) or ())

    def sadd(self, key: str, *members: str) -> None:
        s = self._set(key, create=True)
        assert s is not None
        s.update(members)

    def srem(self, key: str, member: str) -> None:
        s = self._set(key)
        if s is not None:
            s.discard(member)
            self._tidy(key)

    # -- sorted sets ----------------------------------------------------------------------

    def _zset(self, key: str, create: bool = False) -> dict[str, float] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = {}
            self.zsets.add(key)
        value = self.data[key]
        assert isinstance(value, dict) and key in self.zsets
        return value  # type: ignore[return-value]

    def zadd(
        self, key: str, score: float, member: str, *, xx: bool = False, gt: bool = False
    ) -> bool:
        """True when ``member`` was added (ZADD's reply of 1)."""
        z = self._zset(key)
        if z is None:
            if xx:
                return False
            z = self._zset(key, create=True)
            assert z is not None
        current = z.get(member)
        if current is None:
            if xx:
                return False
            z[member] = float(score)
            return True
        if not gt or score > current:
            z[member] = float(score)
        return False

    def zincrby(self, key: str, by: float, member: str) -> None:
        z = self._zset(key, create=True)
        assert z is not None
        z[member] = z.get(member, 0.0) + by

    def zrem(self, key: str, member: str) -> None:
        z = self._zset(key)
        if z is not None:
            z.pop(member, None)
            self._tidy(key)

    def zscore(self, key: str, member: str) -> float | None:
        z = self._zset(key)
        return None if z is None else z.get(member)

    def zcard(self, key: str) -> int:
        return len(self._zset(key) or ())

    def zremrangebyscore(self, key: str, max_score: float) -> None:
        """Remove members scored at most ``max_score`` (``-inf`` to ``max_score``)."""
        z = self._zset(key)
        if z is not None:
            for member in [m for m, score in z.items() if score <= max_score]:
                del z[member]
            self._tidy(key)

    def zitems(self, key: str) -> list[tuple[str, float]]:
        """Members in Redis order: by score, then member."""
        return sorted((self._zset(key) or {}).items(), key=lambda item: (item[1], item[0]))

    def zrev(self, key: str) -> list[tuple[str, float]]:
        return zrev_order((self._zset(key) or {}).items())

    def sweep(self) -> None:
        for key, at in list(self.expires.items()):
            if self.now > at:
                self.delete(key)


def zrev_order(items: Any) -> list[tuple[str, float]]:
    """Highest score first; ties by member, descending, as ``ZRANGE ... REV`` orders them."""
    return sorted(items, key=lambda item: (item[1], item[0]), reverse=True)


class _Apply:
    """One event applied to the keyspace: a step of the Lua script of ``redis_scripts``, in
    Python, in the same order and with the same names (``a(n)`` is the script's ``A[n]``).
    Where the script compares its ``TYPE``, this compares the payload class (``model``)."""

    def __init__(
        self,
        ks: _Keyspace,
        prefix: str,
        config: LiveStoreConfig,
        model: type[Payload],
        fields: Sequence[str],
        waiting: set[str] | None = None,
    ) -> None:
        self.ks = ks
        self.model = model
        #: The script's deferral state: None when deferral is not allowed, else the users of
        #: the batch whose playback waits (the script's ``defer_key`` set).
        self.waiting = waiting
        self.c = config
        self.p = prefix
        self.fields = fields
        self.type, self.eid, self.ts = fields[0], fields[1], fields[2]
        self.t = int(self.ts)
        self.view_ttl = config.viewing_ttl_s * 1000
        self.timeout = config.heartbeat_timeout_s * 1000
        self.index_ttl = config.index_ttl_s * 1000

    def a(self, n: int) -> str:
        return self.fields[n - 1]

    def k(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    def run(self) -> str:
        ks = self.ks
        marked = self.model not in _UNMARKED
        marker = self.k("applied", self.eid)
        if marked:
            first = ks.get(marker)
            if first is not None:
                return "d" + first
        handler = _HANDLERS.get(self.model)
        waiting = self.waiting
        if waiting is not None and self.model in _PLAYBACK and self.a(5) in waiting:
            outcome = _WAITING
        elif handler is None:
            outcome = "rnot consumed by the redis sink"
        else:
            try:
                outcome = handler(self)
            except Exception as exc:  # the script's pcall: the event stays unrecorded
                return f"e{type(exc).__name__}: {exc}".replace("\n", " ")
        if outcome.startswith("w"):
            assert waiting is not None
            waiting.add(self.a(5))
            return outcome
        if marked:
            ks.set_str(marker, outcome, ex_ms=self.c.marker_ttl_s * 1000)
        elif outcome != "s":
            return outcome  # unmarked: a refusal or duplicate may be a redelivery, not counted
        ks.incr(self.k("counter", "events", self.type))
        return outcome

    # -- shared steps ---------------------------------------------------------------------

    def newer(self, stored_t: str | None, stored_eid: str | None) -> bool:
        if stored_t is None:
            return True
        st = int(stored_t)
        return self.t > st or (self.t == st and self.eid > (stored_eid or ""))

    def erased(self, user: str) -> bool:
        at = self.ks.get(self.k("erased", user))
        return at is not None and self.t <= int(at)

    def rerank(self, title: str, total: int | None = None, n: int | None = None) -> None:
        ks = self.ks
        if n is None or total is None:
            agg_sum, agg_count = ks.hmget(self.k("ratings", title), "sum", "count")
            total, n = int(agg_sum or 0), int(agg_count or 0)
        genres = ks.smembers(self.k("title", "genres", title))
        if n <= 0 or ks.exists(self.k("title", "removed", title)):
            ks.zrem(self.k("rank", "top_rated"), title)
            for genre in genres:
                ks.zrem(self.k("rank", "top_rated", genre), title)
            return
        # Same operations, in the same order, as the Lua: the scores come out bit-identical.
        c, m = float(self.c.bayes_c), float(self.c.bayes_m)
        score = (c * m + total) / (c + n)
        ks.zadd(self.k("rank", "top_rated"), score, title)
        for genre in genres:
            ks.zadd(self.k("rank", "top_rated", genre), score, title)

    def invalidate(self, title: str) -> None:
        self.ks.delete(self.k("cache", "title", title))
        self.ks.incr(self.k("cache", "catalog", "version"))

    # -- playback -------------------------------------------------------------------------

    def continue_at(self, user: str, vs: str, refresh: bool) -> None:
        ks, title = self.ks, self.a(6)
        ck = self.k("continue", user)
        pk = ck + ":pos"
        prev = ks.hget(pk, title)
        if prev is not None:
            pt, pe = prev.split("|")[:2]
            if not self.newer(pt, pe):
                return
        if int(self.a(8)) > self.c.finished_ratio * int(self.a(9)):
            ks.zrem(ck, title)
            created = ks.hset_field(pk, title, f"{self.ts}|{self.eid}|done")
        else:
            created = ks.zadd(ck, self.t, title)
            entry = "|".join((self.ts, self.eid, self.a(8), self.a(9), self.a(7), vs))
            created = ks.hset_field(pk, title, entry) or created
        if refresh or created:
            ks.pexpire(ck, self.c.continue_ttl_s * 1000)
            ks.pexpire(pk, self.c.continue_ttl_s * 1000)

    def write_viewing(self, vk: str, state: str, reason: str) -> None:
        self.ks.hset(
            vk,
            title=self.a(6),
            episode=self.a(7),
            position=self.a(8),
            duration=self.a(9),
            device_kind=self.a(10),
            device_id=self.a(11),
            state=state,
            reason=reason,
            t=self.ts,
            eid=self.eid,
        )
        self.ks.pexpire(vk, self.view_ttl)

    def playback_started(self) -> str:
        ks, vs, user, title = self.ks, self.a(4), self.a(5), self.a(6)
        if self.erased(user):
            return "tthe user is erased"
        vk = self.k("viewing", vs)
        known, cur_t, cur_eid = ks.hmget(vk, "user", "t", "eid")
        if known is not None:
            if known != user:
                return "rthe viewing session belongs to another user"
            if not self.newer(cur_t, cur_eid):
                return "ta newer event of this viewing session is already applied"
        plan, status, ends_at = ks.hmget(self.k("plan", user), "plan", "status", "ends_at")
        if (
            plan is None
            and status is None
            and self.waiting is not None
            and not ks.exists(self.k("erased", user))
        ):
            return "wno active subscription"
        limit = _LIMITS.get(plan) if plan is not None else None
        if limit is None or (status == "canceled" and self.t >= int(ends_at or 0)):
            return "rno active subscription"
        sk = self.k("streams", user)
        ks.zremrangebyscore(sk, self.t - self.timeout - 1)
        n = ks.zcard(sk)
        if ks.zscore(sk, vs) is not None:
            n -= 1
        if n >= limit:
            return f"rconcurrent stream limit {limit} reached"
        if known is None:
            ks.hset(vk, user=user, started=self.ts)
            if not ks.exists(self.k("title", "removed", title)):
                wk = self.k("rank", "watched", self.a(12))
                ks.zincrby(wk, 1, title)
                ks.pexpire(wk, self.c.ranking_days * DAY_MS)
                ks.sadd(self.k("rank", "watched", "_days"), self.a(12))
            ik = self.k("viewings", user)
            ks.zadd(ik, self.t, vs)
            ks.zremrangebyscore(ik, self.t - self.index_ttl)
            ks.pexpire(ik, self.index_ttl)
        self.write_viewing(vk, "playing", "")
        ks.zadd(sk, self.t, vs)
        ks.pexpire(sk, self.index_ttl)
        ak = self.k("streams", "_all")
        ks.zadd(ak, self.t, vs)
        ks.zremrangebyscore(ak, self.t - self.timeout - 1)
        self.continue_at(user, vs, True)
        return "s"

    def playback_progress(self, stopping: bool) -> str:
        ks, vs, user = self.ks, self.a(4), self.a(5)
        vk = self.k("viewing", vs)
        owner, cur_t, cur_eid, state = ks.hmget(vk, "user", "t", "eid", "state")
        if owner is None:
            return "runknown or expired viewing session"
        if owner != user:
            return "rthe viewing session belongs to another user"
        if cur_eid == self.eid and cur_t == self.ts:
            return "ds"  # the heartbeat the session holds (the marker's job for the others)
        if not self.newer(cur_t, cur_eid):
            return "ta newer event of this viewing session is already applied"
        if state == "stopped":
            return "tthe viewing session is already stopped"
        sk, ak = self.k("streams", user), self.k("streams", "_all")
        if stopping:
            self.write_viewing(vk, "stopped", self.a(12))
            ks.zrem(sk, vs)
            ks.zrem(ak, vs)
        else:
            self.write_viewing(vk, "playing", "")
            if ks.zadd(sk, self.t, vs):
                ks.pexpire(sk, self.index_ttl)
            ks.zadd(ak, self.t, vs)
        self.continue_at(user, vs, stopping)
        return "s"

    # -- ratings --------------------------------------------------------------------------

    def rate(self) -> str:
        ks, user, title, stars = self.ks, self.a(4), self.a(5), int(self.a(6))
        if self.erased(user):
            return "tthe user is erased"
        uk = self.k("rating", user)
        prev = ks.hget(uk, title)
        old = 0
        if prev is not None:
            ps, pt, pe = prev.split("|", 2)
            if not self.newer(pt, pe):
                return "ta newer rating of this title by this user is already applied"
            old = int(ps)
        ks.hset_field(uk, title, f"{self.a(6)}|{self.ts}|{self.eid}")
        if stars == old:
            return "s"
        dn = (1 if stars > 0 else 0) - (1 if old > 0 else 0)
        tk = self.k("ratings", title)
        total = ks.hincrby(tk, "sum", stars - old)
        n = ks.hincrby(tk, "count", dn)
        if n <= 0:
            ks.delete(tk)
        gk = self.k("ratings", "_global")
        ks.hincrby(gk, "sum", stars - old)
        ks.hincrby(gk, "count", dn)
        self.rerank(title, total, n)
        return "s"

    # -- subscriptions and sessions -------------------------------------------------------

    def subscription(self) -> str:
        ks, user = self.ks, self.a(4)
        if self.erased(user):
            return "tthe user is erased"
        pk = self.k("plan", user)
        cur_t, cur_eid = ks.hmget(pk, "t", "eid")
        if not self.newer(cur_t, cur_eid):
            return "ta newer subscription event of this user is already applied"
        if self.model is ev.SubscriptionCanceled:
            ks.hset(pk, status="canceled", ends_at=self.a(8))
        elif self.model is ev.SubscriptionPlanChanged:
            ks.hset(pk, plan=self.a(6))
        else:
            ks.hset(pk, plan=self.a(6), status="active", period_end=self.a(7))
            ks.hdel(pk, "ends_at")
        ks.hset(pk, subscription=self.a(5), t=self.ts, eid=self.eid)
        return "s"

    def session(self) -> str:
        ks, user, sid = self.ks, self.a(4), self.a(5)
        if self.erased(user):
            return "tthe user is erased"
        xk = self.k("sessions", user)
        if self.model is ev.SessionLoginStarted:
            ks.zadd(xk, int(self.a(6)), sid, gt=True)
            counter = "logins"
        elif self.model is ev.SessionRefreshed:
            ks.zadd(xk, int(self.a(6)), sid, xx=True, gt=True)
            counter = "session_refreshes"
        else:
            ks.zrem(xk, sid)
            ks.delete(self.k("session", sid))
            counter = "session_ends"
        ks.zremrangebyscore(xk, self.t)
        items = ks.zitems(xk)
        if items:
            ks.pexpire(xk, items[-1][1] - self.t)
        ck = self.k("counter", counter, self.a(7))
        ks.incr(ck)
        ks.pexpire(ck, self.c.counter_days * DAY_MS)
        return "s"

    # -- catalog --------------------------------------------------------------------------

    def title_version_guard(self) -> str | None:
        vk = self.k("title", "version", self.a(4))
        cur = self.ks.get(vk)
        if cur is not None and int(self.a(5)) <= int(cur):
            return f"tversion {cur} of the title is already applied"
        self.ks.set_str(vk, self.a(5))
        return None

    def title_upserted(self) -> str:
        ks, title = self.ks, self.a(4)
        stale = self.title_version_guard()
        if stale:
            return stale
        ks.delete(self.k("title", "removed", title))
        gk = self.k("title", "genres", title)
        wanted = self.fields[5:]
        for genre in ks.smembers(gk):
            if genre not in wanted:
                ks.srem(self.k("genre", genre), title)
                ks.zrem(self.k("rank", "top_rated", genre), title)
        ks.delete(gk)
        for genre in wanted:
            ks.sadd(gk, genre)
            ks.sadd(self.k("genre", genre), title)
        self.rerank(title)
        self.invalidate(title)
        return "s"

    def title_removed(self) -> str:
        ks, title = self.ks, self.a(4)
        stale = self.title_version_guard()
        if stale:
            return stale
        ks.set_str(self.k("title", "removed", title), "1")
        gk = self.k("title", "genres", title)
        for genre in ks.smembers(gk):
            ks.srem(self.k("genre", genre), title)
            ks.zrem(self.k("rank", "top_rated", genre), title)
        ks.delete(gk)
        ks.zrem(self.k("rank", "top_rated"), title)
        dk = self.k("rank", "watched", "_days")
        for day in ks.smembers(dk):
            wk = self.k("rank", "watched", day)
            if ks.exists(wk):
                ks.zrem(wk, title)
            else:
                ks.srem(dk, day)
        self.invalidate(title)
        return "s"

    # -- flags and erasure ----------------------------------------------------------------

    def flag_set(self) -> str:
        ks, name, user = self.ks, self.a(4), self.a(6)
        hk = self.k("flags")
        if user:
            if self.erased(user):
                return "tthe user is erased"
            hk = self.k("flags", "user", user)
        mk = hk + ":at"
        prev = ks.hget(mk, name)
        if prev is not None:
            pt, pe = prev.split("|", 1)
            if not self.newer(pt, pe):
                return "ta newer value of this flag is already applied"
        ks.hset_field(hk, name, self.a(5))
        ks.hset_field(mk, name, f"{self.ts}|{self.eid}")
        return "s"

    def user_erased(self) -> str:
        ks, user = self.ks, self.a(4)
        ek = self.k("erased", user)
        prev = ks.get(ek)
        if prev is not None and self.t <= int(prev):
            return "tthe user is already erased"
        ks.set_str(ek, self.ts)
        ik, ak = self.k("viewings", user), self.k("streams", "_all")
        for vs, _ in ks.zitems(ik):
            ks.delete(self.k("viewing", vs))
            ks.zrem(ak, vs)
        xk = self.k("sessions", user)
        for sid, _ in ks.zitems(xk):
            ks.delete(self.k("session", sid))
        lk = self.k("auth", "_user", user)
        for digest in ks.smembers(lk):
            ks.delete(self.k("auth", digest))
        ks.delete(lk)
        uk = self.k("rating", user)
        ratings = ks.hgetall(uk)
        fk = self.k("flags", "user", user)
        ks.delete(
            ik,
            xk,
            uk,
            self.k("streams", user),
            self.k("continue", user),
            self.k("continue", user) + ":pos",
            self.k("plan", user),
            fk,
            fk + ":at",
        )
        gk = self.k("ratings", "_global")
        rated = []
        for title, entry in ratings.items():
            stars = int(entry.split("|", 1)[0])
            if stars > 0:
                tk = self.k("ratings", title)
                ks.hincrby(tk, "sum", -stars)
                if ks.hincrby(tk, "count", -1) <= 0:
                    ks.delete(tk)
                ks.hincrby(gk, "sum", -stars)
                ks.hincrby(gk, "count", -1)
                rated.append(title)
        for title in rated:
            self.rerank(title)
        return "s"


#: The script's ``handlers`` table, keyed by payload class.
_HANDLERS: Final[dict[type[Payload], Callable[[_Apply], str]]] = {
    ev.PlaybackStarted: _Apply.playback_started,
    ev.PlaybackProgress: lambda a: a.playback_progress(False),
    ev.PlaybackStopped: lambda a: a.playback_progress(True),
    ev.RatingSubmitted: _Apply.rate,
    ev.RatingRetracted: _Apply.rate,
    ev.SubscriptionStarted: _Apply.subscription,
    ev.SubscriptionPlanChanged: _Apply.subscription,
    ev.SubscriptionRenewed: _Apply.subscription,
    ev.SubscriptionCanceled: _Apply.subscription,
    ev.SessionLoginStarted: _Apply.session,
    ev.SessionRefreshed: _Apply.session,
    ev.SessionEnded: _Apply.session,
    ev.TitleUpserted: _Apply.title_upserted,
    ev.TitleRemoved: _Apply.title_removed,
    ev.FlagSet: _Apply.flag_set,
    ev.UserErased: _Apply.user_erased,
}


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
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.prefix = checked_prefix(prefix)
        self.config = config or LiveStoreConfig()
        self._clock = clock
        self._ks = _Keyspace()
        self._lock = threading.RLock()
        self._since_sweep = 0

    def close(self) -> None:
        pass

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _tick(self) -> int:
        self._ks.now = to_ms(self._clock())
        return self._ks.now

    def _now_ms(self, now: datetime | None) -> int:
        tick = self._tick()
        return tick if now is None else to_ms(now)

    # --- write side ----------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        outcomes: list[Outcome] = []
        waiting: set[str] | None = set() if allow_defer else None
        with self._lock:
            for event in events:
                fields = event_fields(event)
                if fields is None:
                    outcomes.append(rejected("not consumed by the redis sink"))
                    continue
                self._tick()
                model = type(event.payload)
                code = _Apply(self._ks, self.prefix, self.config, model, fields, waiting).run()
                if code.startswith("e"):
                    raise PermanentStoreError(event.event_id, code[1:])
                outcomes.append(outcome_of(code))
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
            since = self._now_ms(now) - self.config.heartbeat_timeout_s * 1000
            rows = self._ks.zrev(self._k("streams", user_id))
        return [vs for vs, score in rows if score >= since]

    def active_streams_total(self, now: datetime | None = None) -> int:
        with self._lock:
            since = self._now_ms(now) - self.config.heartbeat_timeout_s * 1000
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
            weights = trending_weights(self._now_ms(now), self.config)
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
        user = scope_user(scope)
        key = self._k("flags") if not user else self._k("flags", "user", user)
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
        if plan is None:
            return None
        if status == "canceled" and now_ms >= int(ends_at or 0):
            return None
        return PlanCode(plan)

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
        return cache_version(self._ks.get(self._k("cache", "catalog", "version")),
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
            self._ks = _Keyspace()
        return count


__all__ = ["InMemoryLiveStore"]
