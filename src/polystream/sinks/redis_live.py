"""S2 Redis sink: the live state of the platform, kept in Redis.

What it holds: viewing sessions built from playback heartbeats (with the plan's
concurrent-stream limit), continue-watching, cache invalidation for catalog reads, rankings
(top rated, most watched per day, trending over 7 days, per genre), dynamic variables (flags,
runtime config, live counters) and the per-user index of login sessions. Login sessions
themselves are written by the API; this sink only revokes them when a ``session.ended`` says so.

Idempotency. Each event is one atomic step of a Lua script (:mod:`~polystream.sinks.
redis_scripts`, a chunk of events per call) that checks and writes the marker
``applied:{event_id}`` together with the effect. The marker stores the first outcome, so a
redelivery answers DUPLICATE (with the first outcome as reason when it was not "stored") and
changes nothing. Markers live ``marker_ttl_s`` (7 days, Kafka's default retention), and the
effects are guarded beyond that too: event-time guards (occurred_at, then event id) on every
overwrite, version guards on catalog titles, erasure tombstones on users. Only the pure
counters (``counter:*``, ``rank:watched:*``, ``cache:catalog:version``) rely on the markers
alone.

Heartbeats (``playback.progress``, three events in four) have no marker: their viewing session
holds the last (occurred_at, event id) applied to it, which is all their idempotency needs. A
heartbeat equal to it is DUPLICATE, an older one STALE, a newer one applies; so a redelivered
heartbeat whose session has moved on since answers STALE rather than DUPLICATE. A refused
heartbeat (its session unknown, expired, erased with its user or another user's; a stopped
session) writes nothing at all, so a redelivery decides again: the same refusal, REJECTED or
STALE again instead of DUPLICATE, and still nothing written. Decided again, it could apply
only if a start of its session with an older event time had been applied in between, which
needs a producer that sends a session's start after its heartbeats, or reuses a session id
(the playback topic keeps a user's events in order, and players start before they beat); it
then applies as it would have in order. ``counter:events:playback.progress`` counts the
heartbeats applied (STORED), where the other ``counter:events:*`` count each event's first
outcome, whatever it was.

Memory of the markers. One costs about 170 bytes of ``used_memory`` (key, value, expiry entry;
``MEMORY USAGE`` reports 136) and lives ``marker_ttl_s``, which stays the topics' retention:
below it, a replay from the oldest offset would apply again what it finds unmarked. At a
sustained 1,000 events/s with the simulator's mix, the markers held after 7 days (605 M
events) are, per event type:

===================================  =====  =================================
event type                           share  markers held (about)
===================================  =====  =================================
playback.progress                    78 %   none (80 GB when they had some)
session.refreshed                    7.6 %  7.8 GB
playback.started, playback.stopped   4 %    4.2 GB each
session.login_started, .ended        2.5 %  2.5 GB each
rating.*                             0.4 %  0.4 GB
subscription.*, catalog.*, flags,    0.3 %  0.3 GB
user.erased
all                                         22 GB (102 GB with heartbeats')
===================================  =====  =================================

Measured on 100k events of the throughput test's mix (83 % heartbeats, 15 % ratings, 2 %
starts): 21.8 MB of ``used_memory`` with heartbeat markers, 7.4 MB without.

Order across topics. Kafka orders events per partition, not across topics, and this sink
reads seven. The state does not depend on how the topics interleave, except where noted:
a ``playback.started`` of a user whose subscription has not been read yet is deferred (see
:mod:`~polystream.sinks.redis_scripts`); genres and ratings of a title meet in the rankings
whatever comes first. Still decided by the state at processing time: the stream limit and the
end of a canceled subscription (the *current* plan, not the plan at the event's time),
whether a view counts (a title removed, or a user erased, at that moment), whether a
heartbeat applies and counts (its user erased before it was read), and a title removed
then upserted again does not get back the views of the days it was removed.

Time. Decisions use event time only (``occurred_at``), never the time of processing, so a
replay or a lagging consumer decides exactly as a live one: which streams count against the
limit, whether the subscription had ended, which rating is newer, which day a view belongs
to. Expiry, which is memory management, counts from processing like any Redis TTL (a viewing
session two hours after its last event was applied): the simulator runs on a clock of its own,
often months in the past, and its state must still be there to read. ``now`` appears only on
the read side (which streams are still active, which plan is current, trending weights), where
callers replaying a simulated period pass their own.

Key layout: see :mod:`~polystream.sinks.live_keys` (both live stores write the same keys).
The rules (event-time order, stream limits, the ranking scores, trending weights) are pure code
in :mod:`polystream.domain.live`; the Lua script takes their decisions inside the server.

Rankings. Top rated is the Bayesian average ``(C*m + sum) / (C + n)`` with ``C`` and the prior
mean ``m`` constants of the configuration (``bayes_c``, ``bayes_m``), recomputed for a title
whenever its ratings or genres change. A constant ``m`` makes the score a function of the
title's own ratings only: with the running global mean, a title's score depended on how the
ratings of *other* titles (other users, other partitions) interleaved with its own, and on
whether its ``catalog.title_upserted`` arrived before or after them (it rescored the title).
Most watched counts viewing sessions started per UTC day. Trending is computed on
read: the last 7 daily counts summed with weight ``0.5 ** (age / half_life)``, age measured
from the middle of each day (clamped at 0), so the ranking decays smoothly instead of jumping
at midnight and needs no per-event write beyond the daily count.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import date, datetime
from typing import Any, Final, cast

import redis
from redis.exceptions import NoScriptError, ResponseError

from polystream.domain.events import AnyEvent, Genre, PlanCode, Sink
from polystream.domain.live import (
    NOT_CONSUMED,
    DumpEntry,
    LiveStoreConfig,
    active_since,
    cache_version,
    current_plan,
    outcome_of,
    scope_user,
    to_ms,
    trending_weights,
    utc_now,
)
from polystream.domain.live_fields import (
    continue_items,
    event_fields,
    stars_of,
    viewing_from_hash,
)
from polystream.domain.outcomes import Outcome, rejected
from polystream.domain.reads import ContinueItem, ViewingSession
from polystream.settings import RedisSettings
from polystream.sinks.live_keys import checked_prefix, flags_parts, top_rated_parts
from polystream.sinks.redis_scripts import render_apply_script
from polystream.store_errors import PermanentStoreError, StoreError, TransientStoreError
from polystream.stores.redis_client import (
    TRANSIENT_REPLIES,
    connect,
    edge,
    is_transient_reply,
    ranked,
)

# Events per script call: enough to amortise the per-call cost (which dominated when each
# event was its own call), few enough that one call holds the server for a millisecond or
# two, never long enough to delay the API's reads noticeably.
_EVENTS_PER_CALL: Final = 100
# Script calls per pipeline round trip.
_CALLS_PER_PIPELINE: Final = 50
# Joins an event's fields into one script argument (see redis_scripts).
_SEP: Final = "\x1f"
# Set-if-the-catalog-did-not-change, atomically (a missing version counts as 0).
_CACHE_WRITE: Final = """
local v = (redis.call('GET', KEYS[1]) or '0') .. '.' .. (redis.call('GET', KEYS[2]) or '0')
if v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"""




def _outcome(code: str) -> Outcome:
    try:
        return outcome_of(code)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc


class RedisLiveStore:
    """The Redis sink's store: :class:`~polystream.sinks.ports.EventStore` plus the reads the
    API and ``verify`` need.

    ``client`` is a URL or a ``redis.Redis`` created with ``decode_responses=True`` (the store
    closes only a client it created). ``prefix`` starts every key, so several stores (tests,
    tenants) share one server without touching each other's keys. ``clock`` is the default
    ``now`` of the reads.
    """

    sink: Sink = Sink.REDIS

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "ps",
        config: LiveStoreConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.prefix = checked_prefix(prefix)
        if isinstance(client, str):
            self._redis = connect(client)
            self._owns_client = True
        else:
            if not client.get_connection_kwargs().get("decode_responses"):
                raise ValueError("the redis client must be created with decode_responses=True")
            self._redis = client
            self._owns_client = False
        self.config = config or LiveStoreConfig()
        self._clock = clock
        self._script = render_apply_script(self.config)
        # Computed locally: constructing the store never talks to the server.
        self._sha = hashlib.sha1(self._script.encode()).hexdigest()

    @classmethod
    def from_settings(
        cls,
        settings: RedisSettings,
        *,
        prefix: str = "ps",
        config: LiveStoreConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> RedisLiveStore:
        client = connect(settings.url, socket_timeout_s=settings.socket_timeout_s)
        store = cls(client, prefix=prefix, config=config, clock=clock)
        store._owns_client = True
        return store

    def close(self) -> None:
        if self._owns_client:
            self._redis.close()

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _now_ms(self, now: datetime | None) -> int:
        return to_ms(self._clock() if now is None else now)

    # --- write side ----------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        """See ``EventStore.apply``. With ``allow_defer`` the script keeps the users whose
        playback waits in a scratch set shared by the batch's calls, deleted here afterwards
        (only when something was deferred; it expires on its own otherwise)."""
        defer_key = self._k("tmp", uuid.uuid4().hex) if allow_defer else ""
        try:
            outcomes = self._apply(events, defer_key)
        except BaseException:
            if defer_key:
                self._drop_scratch(defer_key)
            raise
        if defer_key and any(outcome.retryable for outcome in outcomes):
            self._drop_scratch(defer_key)
        return outcomes

    def _drop_scratch(self, key: str) -> None:
        # Best effort: it expires anyway, and a server that just failed may fail this too.
        with suppress(StoreError), edge():
            self._redis.delete(key)

    def _apply(self, events: Sequence[AnyEvent], defer_key: str) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        calls: list[tuple[list[int], list[str]]] = []
        indexes: list[int] = []
        encoded: list[str] = []
        for index, event in enumerate(events):
            fields = event_fields(event)
            if fields is None:
                outcomes[index] = rejected(NOT_CONSUMED)
                continue
            indexes.append(index)
            encoded.append(_SEP.join(fields))
            if len(indexes) == _EVENTS_PER_CALL:
                calls.append((indexes, encoded))
                indexes, encoded = [], []
        if indexes:
            calls.append((indexes, encoded))
        # NOSCRIPT (a restarted or flushed server) is repaired here: the script is loaded and
        # exactly the calls that did not run are sent again, in their order (a call that
        # meets NOSCRIPT ran nothing). Three rounds cover a flush racing with the reload;
        # more means something keeps flushing.
        for _ in range(3):
            replies = self._call_all(defer_key, [chunk for _, chunk in calls])
            retry: list[tuple[list[int], list[str]]] = []
            for (chunk_indexes, chunk), reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    retry.append((chunk_indexes, chunk))
                elif isinstance(reply, ResponseError):
                    if is_transient_reply(reply):
                        raise TransientStoreError(f"redis refused for now: {reply}")
                    # Not one event's fault: the script itself failed outside its steps.
                    raise StoreError(f"the live store script failed: {reply}")
                else:
                    codes = cast(str, reply).split("\n")
                    if len(codes) != len(chunk_indexes):
                        raise StoreError("the live store script answered the wrong count")
                    for index, code in zip(chunk_indexes, codes, strict=True):
                        if code.startswith("e"):
                            self._raise_failed(events[index], code[1:])
                        outcomes[index] = _outcome(code)
            if not retry:
                return cast(list[Outcome], outcomes)
            with edge():
                self._redis.script_load(self._script)
            calls = retry
        raise TransientStoreError("the redis script cache keeps losing the apply script")

    @staticmethod
    def _raise_failed(event: AnyEvent, error: str) -> None:
        if error.startswith(TRANSIENT_REPLIES):
            raise TransientStoreError(f"redis refused for now: {error}")
        raise PermanentStoreError(event.event_id, f"redis refused: {error}")

    def _call_all(self, defer_key: str, chunks: Sequence[list[str]]) -> list[Any]:
        replies: list[Any] = []
        with edge():
            for start in range(0, len(chunks), _CALLS_PER_PIPELINE):
                pipe = self._redis.pipeline(transaction=False)
                for chunk in chunks[start : start + _CALLS_PER_PIPELINE]:
                    pipe.evalsha(self._sha, 0, self.prefix, defer_key, *chunk)
                replies.extend(pipe.execute(raise_on_error=False))
        return replies

    # --- read side -----------------------------------------------------------------------

    def viewing_session(self, viewing_session_id: str) -> ViewingSession | None:
        with edge():
            h = cast(dict[str, str], self._redis.hgetall(self._k("viewing", viewing_session_id)))
        return viewing_from_hash(viewing_session_id, h) if h else None

    def active_streams(self, user_id: str, now: datetime | None = None) -> list[str]:
        """The user's playing sessions, most recent heartbeat first."""
        since = active_since(self._now_ms(now), self.config)
        with edge():
            rows = self._redis.zrange(
                self._k("streams", user_id), "+inf", since, desc=True, byscore=True
            )
        return cast(list[str], rows)

    def active_streams_total(self, now: datetime | None = None) -> int:
        since = active_since(self._now_ms(now), self.config)
        with edge():
            return int(self._redis.zcount(self._k("streams", "_all"), since, "+inf"))

    def continue_watching(self, user_id: str, limit: int = 20) -> list[ContinueItem]:
        key = self._k("continue", user_id)
        with edge():
            titles = cast(list[str], self._redis.zrange(key, 0, limit - 1, desc=True))
            entries = cast(
                list[str | None], self._redis.hmget(key + ":pos", titles) if titles else []
            )
        return continue_items(titles, entries)

    def top_rated(
        self, limit: int = 10, genre: Genre | str | None = None
    ) -> list[tuple[str, float]]:
        key = self._k(*top_rated_parts(genre))
        with edge():
            rows = self._redis.zrange(key, 0, limit - 1, desc=True, withscores=True)
        return ranked(cast(list[tuple[str, float]], rows))

    def most_watched(
        self, day: date, limit: int = 10, genre: Genre | str | None = None
    ) -> list[tuple[str, int]]:
        key = self._k("rank", "watched", day.isoformat())
        rows: list[tuple[str, float]]
        if genre is None:
            with edge():
                reply = self._redis.zrange(key, 0, limit - 1, desc=True, withscores=True)
            rows = cast(list[tuple[str, float]], reply)
        else:
            rows = self._combined({key: 1.0}, limit, genre)
        return [(title, int(score)) for title, score in rows]

    def trending(
        self, limit: int = 10, now: datetime | None = None, genre: Genre | str | None = None
    ) -> list[tuple[str, float]]:
        weights = trending_weights(self._now_ms(now), self.config)
        keys = {self._k("rank", "watched", day): weight for day, weight in weights}
        return ranked(self._combined(keys, limit, genre))

    def _combined(
        self, weighted: Mapping[str, float], limit: int, genre: Genre | str | None
    ) -> list[tuple[str, float]]:
        # ZUNIONSTORE into a scratch key deleted in the same transaction: one round trip,
        # and only the top `limit` rows travel back.
        scratch = self._k("tmp", uuid.uuid4().hex)
        with edge():
            pipe = self._redis.pipeline(transaction=True)
            pipe.zunionstore(scratch, dict(weighted))
            if genre is not None:
                # A set counts as scores of 1; weight 0 keeps the counts and filters by genre.
                pipe.zinterstore(scratch, {scratch: 1.0, self._k("genre", str(genre)): 0.0})
            pipe.zrange(scratch, 0, limit - 1, desc=True, withscores=True)
            pipe.delete(scratch)
            replies = pipe.execute()
        return ranked(replies[-2])

    def flags(self, scope: str = "global") -> dict[str, Any]:
        key = self._k(*flags_parts(scope_user(scope)))
        with edge():
            raw = cast(dict[str, str], self._redis.hgetall(key))
        return {name: json.loads(value) for name, value in raw.items()}

    def counter(self, name: str) -> int:
        """A live counter: ``events:<type>``, ``logins:<YYYY-MM-DD>``, ..."""
        with edge():
            value = cast(str | None, self._redis.get(self._k("counter", name)))
        return int(value) if value is not None else 0

    def plan_of(self, user_id: str, now: datetime | None = None) -> PlanCode | None:
        """The plan the user may stream with at ``now``, None without an active subscription."""
        with edge():
            reply = self._redis.hmget(self._k("plan", user_id), ["plan", "status", "ends_at"])
        plan, status, ends_at = cast(list[str | None], reply)
        return current_plan(plan, status, ends_at, self._now_ms(now))

    def title_rating(self, title_id: str) -> tuple[int, int]:
        """(count, sum of stars) of the title's current ratings."""
        with edge():
            reply = self._redis.hmget(self._k("ratings", title_id), ["sum", "count"])
        total, count = cast(list[str | None], reply)
        return int(count or 0), int(total or 0)

    def user_rating(self, user_id: str, title_id: str) -> int | None:
        with edge():
            entry = self._redis.hget(self._k("rating", user_id), title_id)
        return stars_of(cast(str | None, entry))

    def title_version(self, title_id: str) -> int | None:
        with edge():
            value = cast(str | None, self._redis.get(self._k("title", "version", title_id)))
        return int(value) if value is not None else None

    def title_removed(self, title_id: str) -> bool:
        with edge():
            return bool(self._redis.exists(self._k("title", "removed", title_id)))

    def title_genres(self, title_id: str) -> set[str]:
        with edge():
            return cast(set[str], self._redis.smembers(self._k("title", "genres", title_id)))

    def genre_titles(self, genre: Genre | str) -> set[str]:
        with edge():
            return cast(set[str], self._redis.smembers(self._k("genre", str(genre))))

    def login_sessions(self, user_id: str, now: datetime | None = None) -> list[str]:
        """The user's login sessions not yet expired at ``now`` (index fed by session.*)."""
        with edge():
            rows = self._redis.zrange(
                self._k("sessions", user_id), f"({self._now_ms(now)}", "+inf", byscore=True
            )
        return cast(list[str], rows)

    # --- catalog cache (cache-aside; the entries are written by the API) ---------------------

    def put_cached_title(self, title_id: str, value: str, ttl_s: int = 300) -> None:
        with edge():
            self._redis.set(self._k("cache", "title", title_id), value, ex=ttl_s)

    def cached_title(self, title_id: str) -> str | None:
        with edge():
            value = self._redis.get(self._k("cache", "title", title_id))
        return cast(str | None, value)

    def catalog_version(self) -> int:
        with edge():
            value = cast(str | None, self._redis.get(self._k("cache", "catalog", "version")))
        return int(value) if value is not None else 0

    def title_versions(self, title_ids: Sequence[str]) -> list[int | None]:
        """The highest catalog version applied per title (None: never seen), in order."""
        if not title_ids:
            return []
        with edge():
            values = cast(list[str | None], self._redis.mget(
                [self._k("title", "version", title_id) for title_id in title_ids]))
        return [int(value) if value is not None else None for value in values]

    def cache_read(self, kind: str, key: str) -> tuple[str | None, str]:
        """A cache-aside entry ``P:cache:{kind}:{key}`` and the catalog's cache version, in
        one round trip (the version is what :meth:`cache_write` must be given back)."""
        with edge():
            entry, *versions = cast(list[str | None], self._redis.mget(
                self._k("cache", kind, key), *self._cache_version_keys()))
        return entry, cache_version(*versions)

    def cache_write(self, kind: str, key: str, value: str, ttl_s: int, if_version: str
                    ) -> bool:
        """Store an entry unless the catalog changed since ``if_version`` was read: a read
        that raced with a sink's invalidation must not put the old document back."""
        with edge():
            stored = self._redis.eval(
                _CACHE_WRITE, 3, *self._cache_version_keys(), self._k("cache", kind, key),
                if_version, value, str(ttl_s * 1000),
            )
        return bool(stored)

    def invalidate_titles(self, title_ids: Sequence[str]) -> None:
        """What the MongoDB sink calls after it stored title changes: their cached details
        go, and every cached page is retired (``cache:catalog:mongo`` moves on). The Redis
        sink does the same when it applies the events; whichever is later wins the race
        with a reader."""
        with edge():
            pipe = self._redis.pipeline(transaction=True)
            if title_ids:
                pipe.delete(*(self._k("cache", "title", t) for t in title_ids))
            pipe.incr(self._k("cache", "catalog", "mongo"))
            pipe.execute()

    def _cache_version_keys(self) -> tuple[str, str]:
        return self._k("cache", "catalog", "version"), self._k("cache", "catalog", "mongo")

    # --- whole-prefix operations (verification and tests) -----------------------------------

    def _keys(self) -> list[str]:
        return cast(list[str], list(self._redis.scan_iter(match=f"{self.prefix}:*", count=1000)))

    def dump(self) -> dict[str, DumpEntry]:
        """Every key under the prefix (without it): type, value and absolute expiry (ms).

        Sets come back sorted, sorted sets as ``{member: score}``. For verification: two
        stores fed the same events must dump equal (markers' expiry aside: it counts from
        processing time).
        """
        with edge():
            keys = self._keys()
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
                pipe.pexpiretime(key)
            meta = pipe.execute()
            pipe = self._redis.pipeline(transaction=False)
            kinds = meta[0::2]
            for key, kind in zip(keys, kinds, strict=True):
                if kind == "string":
                    pipe.get(key)
                elif kind == "hash":
                    pipe.hgetall(key)
                elif kind == "set":
                    pipe.smembers(key)
                elif kind == "zset":
                    pipe.zrange(key, 0, -1, withscores=True)
                else:
                    pipe.type(key)  # keeps replies aligned; other types are not ours
            values = pipe.execute()
        cut = len(self.prefix) + 1
        result: dict[str, DumpEntry] = {}
        for key, kind, expiry, value in zip(keys, kinds, meta[1::2], values, strict=True):
            if kind == "none":
                continue  # expired between SCAN and TYPE
            if kind == "set":
                value = sorted(value)
            elif kind == "zset":
                value = dict(ranked(value))
            result[key[cut:]] = (kind, value, expiry if expiry >= 0 else None)
        return result

    def clear(self) -> int:
        """Delete every key under the prefix (SCAN + DEL, never FLUSHDB); returns how many."""
        deleted = 0
        with edge():
            keys = self._keys()
            for start in range(0, len(keys), 1000):
                deleted += int(self._redis.delete(*keys[start : start + 1000]))
        return deleted


__all__ = ["RedisLiveStore"]
