"""The live-state rules: what sessions, playback, ratings, subscriptions and flags decide.

Pure code, shared by the live store's two adapters: the in-memory one applies them directly
(:mod:`~polystream.sinks.memory_live_apply`), the Redis one renders their constants into its
Lua script (:mod:`~polystream.sinks.redis_scripts`), which takes the same decisions inside the
server, atomically with their writes; the contract tests hold the two to equal dumps. Key
names stay with the adapters (the layout: :mod:`~polystream.sinks.live_keys`).

Time is event time (``occurred_at`` in epoch milliseconds) in every decision, never the time
of processing; ``now`` appears only on the read side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from polystream.domain.events import PLANS, PlanCode, ReceiptStatus
from polystream.domain.outcomes import DUPLICATE, STORED, Outcome, missing_prerequisite, rejected

DAY_MS: Final = 86_400_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY: Final = date(1970, 1, 1)
_ONE_MS: Final = timedelta(milliseconds=1)

#: One key of a live store's dump: type, value, absolute expiry in ms (or None).
DumpEntry = tuple[str, Any, int | None]

#: Concurrent streams each plan allows.
STREAM_LIMITS: Final = {code.value: plan.max_streams for code, plan in PLANS.items()}

NOT_CONSUMED: Final = "not consumed by the redis sink"


@dataclass(frozen=True, slots=True)
class LiveStoreConfig:
    """Durations and constants of the live store (both implementations)."""

    #: How long a processed event is remembered: the topics' retention (168 h). A marker is
    #: written after its record was produced, so it outlives the record, and a replay from
    #: offset 0 finds every marker. Heartbeats have none (see :mod:`~polystream.sinks.
    #: redis_live`: what the markers of each event type cost).
    marker_ttl_s: int = 7 * 86_400
    #: A viewing session lives this long after its last event.
    viewing_ttl_s: int = 2 * 3600
    #: A stream without a heartbeat for this long no longer counts against the plan limit:
    #: three missed heartbeats at the simulator's (and player's) two-minute interval.
    heartbeat_timeout_s: int = 360
    continue_ttl_s: int = 90 * 86_400
    #: A user's viewing sessions stay indexed (for erasure) this long after they started:
    #: the longest media (a day) plus generous pauses.
    index_ttl_s: int = 2 * 86_400
    #: Daily "most watched" rankings are kept this many days after their last change (longer
    #: than the trending window).
    ranking_days: int = 8
    trending_days: int = 7
    trending_half_life_s: int = 86_400
    #: Per-day session counters are kept this many days.
    counter_days: int = 35
    #: Weight (in votes) of the prior mean in the Bayesian average.
    bayes_c: float = 10.0
    #: The prior mean (stars) a title's average is pulled towards: the scale's middle, a
    #: constant so that a score depends on the title's own ratings only.
    bayes_m: float = 3.0
    #: Past this share of the duration a title counts as finished and leaves continue-watching.
    finished_ratio: float = 0.95

    def __post_init__(self) -> None:
        if self.trending_days >= self.ranking_days:
            raise ValueError("trending_days must be below ranking_days (daily keys expire)")
        if not 0 < self.finished_ratio <= 1:
            raise ValueError("finished_ratio must be in (0, 1]")


# --- time ----------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds, exactly (``timestamp() * 1000`` can be off by one)."""
    return (moment - _EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _ONE_MS


@lru_cache(maxsize=4096)
def day_name(day: int) -> str:
    """``YYYY-MM-DD`` of an epoch day number."""
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


def utc_now() -> datetime:
    """The stores' default clock (only their reads and expiries use it)."""
    return datetime.now(UTC)


# --- the rules -----------------------------------------------------------------------------


def newer(t: int, eid: str, stored_t: str | None, stored_eid: str | None) -> bool:
    """Whether an event at ``(t, eid)`` overwrites what ``(stored_t, stored_eid)`` wrote:
    event time first, the event id breaks ties, nothing stored yet means yes."""
    if stored_t is None:
        return True
    st = int(stored_t)
    return t > st or (t == st and eid > (stored_eid or ""))


def erased_by(t: int, erased_at: str | None) -> bool:
    """An event of a user at ``t`` is stale once the user's erasure (at ``erased_at``) is
    applied, unless it happened after it."""
    return erased_at is not None and t <= int(erased_at)


def stream_limit(plan: str | None, status: str | None, ends_at: str | None, t: int
                 ) -> int | None:
    """Concurrent streams the subscription allows at event time ``t``; None: no active
    subscription (none, an unknown plan, or canceled and past its end)."""
    limit = STREAM_LIMITS.get(plan) if plan is not None else None
    if limit is None or (status == "canceled" and t >= int(ends_at or 0)):
        return None
    return limit


def current_plan(plan: str | None, status: str | None, ends_at: str | None, now_ms: int
                 ) -> PlanCode | None:
    """The plan a user may stream with at ``now_ms`` (the read side's view of the hash)."""
    if plan is None:
        return None
    if status == "canceled" and now_ms >= int(ends_at or 0):
        return None
    return PlanCode(plan)


def finished(position: int, duration: int, config: LiveStoreConfig) -> bool:
    """A title watched past ``finished_ratio`` leaves continue-watching."""
    return position > config.finished_ratio * duration


def top_rated_score(total: int, n: int, config: LiveStoreConfig) -> float:
    """The Bayesian average ``(C*m + sum) / (C + n)``, in the very operations (and order) of
    the Lua script, so that both stores' scores come out bit-identical."""
    c, m = float(config.bayes_c), float(config.bayes_m)
    return (c * m + total) / (c + n)


def rating_counts(stars: int, old: int) -> tuple[int, int]:
    """(sum, count) deltas of a title's ratings when a user's stars go from ``old`` to
    ``stars`` (0: none, or retracted)."""
    return stars - old, (1 if stars > 0 else 0) - (1 if old > 0 else 0)


def trending_weights(now_ms: int, config: LiveStoreConfig) -> list[tuple[str, float]]:
    """(day, weight) of the daily counts that make up trending at ``now_ms``: each day
    weighs ``0.5 ** (age / half_life)``, its age measured from its middle (clamped at 0), so
    the ranking decays smoothly instead of jumping at midnight."""
    today = now_ms // DAY_MS
    weights = []
    for day in range(today, today - config.trending_days, -1):
        age_ms = max(0, now_ms - (day * DAY_MS + DAY_MS // 2))
        weights.append((day_name(day), 0.5 ** (age_ms / (config.trending_half_life_s * 1000))))
    return weights


def active_since(now_ms: int, config: LiveStoreConfig) -> int:
    """The oldest heartbeat (ms) of a stream that still counts as active at ``now_ms``."""
    return now_ms - config.heartbeat_timeout_s * 1000


def scope_user(scope: str) -> str:
    """The user id of a ``user:<id>`` flag scope, ``""`` for ``global``."""
    if scope == "global":
        return ""
    if scope.startswith("user:") and len(scope) > 5:
        return scope[5:]
    raise ValueError(f"flag scope must be 'global' or 'user:<id>', not {scope!r}")


def flag_json(value: Any) -> str:
    # Canonical, so the same value always stores the same bytes (replays compare equal).
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def cache_version(by_redis: str | None, by_mongo: str | None) -> str:
    """The catalog's cache version: the changes the Redis sink applied and those the
    MongoDB sink stored, as ``r.m`` (a missing count is 0)."""
    return f"{by_redis or 0}.{by_mongo or 0}"


# --- outcome codes -------------------------------------------------------------------------
# What applying one event answers, in both stores: one character and a reason. ``s`` stored,
# ``t<reason>`` stale, ``r<reason>`` rejected, ``w<reason>`` deferred (a prerequisite from
# another topic is missing; nothing of it recorded, the worker offers it again),
# ``d<first code>`` duplicate (the marker keeps the first outcome), ``e<error>`` failed.

_STATUS_OF_CODE: Final = {"s": "stored", "t": "stale", "r": "rejected"}


# Outcome codes are few (fixed reasons), so parsing each one once is enough.
@lru_cache(maxsize=1024)
def outcome_of(code: str) -> Outcome:
    """The :class:`Outcome` of an outcome code (ValueError for a code no rule writes)."""
    kind, reason = code[:1], code[1:]
    if kind == "s":
        return STORED
    if kind == "t":
        return Outcome(ReceiptStatus.STALE, reason)
    if kind == "r":
        return rejected(reason)
    if kind == "w":
        return missing_prerequisite(reason)
    if kind == "d":
        if reason == "s":
            return DUPLICATE
        first = _STATUS_OF_CODE.get(reason[:1], "unknown")
        return Outcome(ReceiptStatus.DUPLICATE, f"already processed: {first}: {reason[1:]}")
    raise ValueError(f"unexpected outcome code {code!r} from the live store")


__all__ = [
    "DAY_MS",
    "NOT_CONSUMED",
    "STREAM_LIMITS",
    "DumpEntry",
    "LiveStoreConfig",
    "active_since",
    "cache_version",
    "current_plan",
    "day_name",
    "erased_by",
    "finished",
    "flag_json",
    "from_ms",
    "newer",
    "outcome_of",
    "rating_counts",
    "scope_user",
    "stream_limit",
    "to_ms",
    "top_rated_score",
    "trending_weights",
    "utc_now",
]
