"""One event applied to the in-memory live store: the Lua script of
:mod:`~polystream.sinks.redis_scripts`, step by step in Python, over a :class:`Keyspace`.

Each step writes the keys the script writes, in the same order, and takes its decisions with
the rules of :mod:`polystream.domain.live` (event-time order, erasure, stream limits, the
finished ratio, the ranking score), so the two stores dump equal (the contract tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from polystream.domain import events as ev
from polystream.domain.events import Payload
from polystream.domain.live import (
    DAY_MS,
    NOT_CONSUMED,
    LiveStoreConfig,
    erased_by,
    finished,
    newer,
    rating_counts,
    stream_limit,
    top_rated_score,
)
from polystream.sinks.live_keys import flags_parts
from polystream.sinks.live_keyspace import Keyspace

_PLAYBACK: Final[frozenset[type[Payload]]] = frozenset(
    {ev.PlaybackStarted, ev.PlaybackProgress, ev.PlaybackStopped}
)
_WAITING: Final = "wwaiting for an earlier event of this user"
#: Types without an ``applied:`` marker (the script's ``UNMARKED``): idempotent by state.
_UNMARKED: Final[frozenset[type[Payload]]] = frozenset({ev.PlaybackProgress})


@dataclass(slots=True)
class Apply:
    """One event applied to the keyspace: a step of the Lua script of ``redis_scripts``, in
    Python, in the same order and with the same names (``a(n)`` is the script's ``A[n]``).
    Where the script compares its ``TYPE``, this compares the payload class (``model``)."""

    ks: Keyspace
    #: The key prefix (the script's ``P``).
    p: str
    c: LiveStoreConfig
    model: type[Payload]
    fields: Sequence[str]
    #: The script's deferral state: None when deferral is not allowed, else the users of the
    #: batch whose playback waits (the script's ``defer_key`` set).
    waiting: set[str] | None = None
    #: The script's ``TYPE``, ``EID``, ``TS`` and ``T``.
    event_type: str = field(init=False)
    eid: str = field(init=False)
    ts: str = field(init=False)
    t: int = field(init=False)

    def __post_init__(self) -> None:
        self.event_type, self.eid, self.ts = self.fields[0], self.fields[1], self.fields[2]
        self.t = int(self.ts)

    @property
    def view_ttl(self) -> int:
        return self.c.viewing_ttl_s * 1000

    @property
    def timeout(self) -> int:
        return self.c.heartbeat_timeout_s * 1000

    @property
    def index_ttl(self) -> int:
        return self.c.index_ttl_s * 1000

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
        handler = HANDLERS.get(self.model)
        waiting = self.waiting
        if waiting is not None and self.model in _PLAYBACK and self.a(5) in waiting:
            outcome = _WAITING
        elif handler is None:
            outcome = "r" + NOT_CONSUMED
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
        ks.incr(self.k("counter", "events", self.event_type))
        return outcome

    # -- shared steps ---------------------------------------------------------------------

    def newer(self, stored_t: str | None, stored_eid: str | None) -> bool:
        return newer(self.t, self.eid, stored_t, stored_eid)

    def erased(self, user: str) -> bool:
        return erased_by(self.t, self.ks.get(self.k("erased", user)))

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
        score = top_rated_score(total, n, self.c)
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
        if finished(int(self.a(8)), int(self.a(9)), self.c):
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
        limit = stream_limit(plan, status, ends_at, self.t)
        if limit is None:
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
        d_sum, d_count = rating_counts(stars, old)
        tk = self.k("ratings", title)
        total = ks.hincrby(tk, "sum", d_sum)
        n = ks.hincrby(tk, "count", d_count)
        if n <= 0:
            ks.delete(tk)
        gk = self.k("ratings", "_global")
        ks.hincrby(gk, "sum", d_sum)
        ks.hincrby(gk, "count", d_count)
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
        if user and self.erased(user):
            return "tthe user is erased"
        hk = self.k(*flags_parts(user))
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
HANDLERS: Final[dict[type[Payload], Callable[[Apply], str]]] = {
    ev.PlaybackStarted: Apply.playback_started,
    ev.PlaybackProgress: lambda a: a.playback_progress(False),
    ev.PlaybackStopped: lambda a: a.playback_progress(True),
    ev.RatingSubmitted: Apply.rate,
    ev.RatingRetracted: Apply.rate,
    ev.SubscriptionStarted: Apply.subscription,
    ev.SubscriptionPlanChanged: Apply.subscription,
    ev.SubscriptionRenewed: Apply.subscription,
    ev.SubscriptionCanceled: Apply.subscription,
    ev.SessionLoginStarted: Apply.session,
    ev.SessionRefreshed: Apply.session,
    ev.SessionEnded: Apply.session,
    ev.TitleUpserted: Apply.title_upserted,
    ev.TitleRemoved: Apply.title_removed,
    ev.FlagSet: Apply.flag_set,
    ev.UserErased: Apply.user_erased,
}


__all__ = ["HANDLERS", "Apply"]
