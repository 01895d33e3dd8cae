"""The live store contract (the Redis sink), written once and run against both implementations.

What the Redis sink promises (DESIGN.md §2 and §4): playback state from heartbeats that never
moves backwards, the plan's concurrent-stream limit, continue-watching, cache invalidation and
a genre index that follow catalog versions, rankings that no redelivery can inflate, flags with
an event-time guard, erasure, and a replay that changes nothing. The redis parameter runs on
the real server with a key prefix of its own per store, deleted afterwards (SCAN + DEL).

Event times are near the real present so that the reads' default "now" (the wall clock) sees
them as recent; the stores themselves do not care how old events are.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from polystream.domain.events import EVENT_TYPES, Envelope, ReceiptStatus, Sink, event_types_for
from polystream.domain.examples import example_event
from polystream.domain.live import DumpEntry, LiveStoreConfig, to_ms, utc_now
from polystream.domain.live_fields import CONSUMED_TYPES
from polystream.settings import Settings
from polystream.sinks.memory_live import InMemoryLiveStore
from polystream.sinks.ports import DUPLICATE, STORED, Outcome, missing_prerequisite
from polystream.sinks.redis_live import RedisLiveStore
from polystream.store_errors import PermanentStoreError, TransientStoreError

S = ReceiptStatus
LiveStore = InMemoryLiveStore | RedisLiveStore
MakeStore = Callable[..., LiveStore]

# A little in the past, so that "now" on the read side is after every event of a test.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.stack)])
def make_store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[MakeStore]:
    """A factory of empty stores of the parametrized kind, each with a prefix of its own."""
    created: list[LiveStore] = []

    def make(config: LiveStoreConfig | None = None) -> LiveStore:
        prefix = f"test-live-{uuid.uuid4().hex[:12]}"
        store: LiveStore
        if request.param == "memory":
            store = InMemoryLiveStore(prefix=prefix, config=config)
        else:
            store = RedisLiveStore.from_settings(settings.redis, prefix=prefix, config=config)
        created.append(store)
        return store

    yield make
    for store in created:
        store.clear()
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> LiveStore:
    return make_store()


@pytest.fixture
def redis_store(settings: Settings) -> Iterator[RedisLiveStore]:
    store = RedisLiveStore.from_settings(
        settings.redis, prefix=f"test-live-{uuid.uuid4().hex[:12]}"
    )
    yield store
    store.clear()
    store.close()


# --- event builders --------------------------------------------------------------------


def subscribe(user: str, plan: str, t: float = 0) -> Envelope[Any]:
    return example_event(
        "subscription.started",
        occurred_at=at(t),
        user_id=user,
        subscription_id=f"sub-{user}",
        plan=plan,
        period_start=at(t),
        period_end=at(t) + timedelta(days=30),
    )


def playback(
    kind: str,
    t: float,
    vs: str,
    user: str = "u1",
    title: str = "t1",
    position: int = 0,
    duration: int = 3600,
    episode: str | None = None,
) -> Envelope[Any]:
    fields: dict[str, Any] = {
        "viewing_session_id": vs,
        "user_id": user,
        "title_id": title,
        "episode_id": episode,
        "position_seconds": position,
        "duration_seconds": duration,
    }
    if kind == "stopped":
        fields["reason"] = "user"
    return example_event(f"playback.{kind}", occurred_at=at(t), **fields)


def rate(user: str, title: str, stars: int, t: float = 0) -> Envelope[Any]:
    return example_event(
        "rating.submitted",
        occurred_at=at(t),
        user_id=user,
        title_id=title,
        stars=stars,
        review=None,
    )


def retract(user: str, title: str, t: float = 0) -> Envelope[Any]:
    return example_event("rating.retracted", occurred_at=at(t), user_id=user, title_id=title)


def upsert(title: str, version: int, genres: Sequence[str], t: float = 0) -> Envelope[Any]:
    return example_event(
        "catalog.title_upserted",
        occurred_at=at(t),
        title_id=title,
        version=version,
        genres=list(genres),
    )


def remove(title: str, version: int, t: float = 0) -> Envelope[Any]:
    return example_event(
        "catalog.title_removed", occurred_at=at(t), title_id=title, version=version
    )


def flag(name: str, value: Any, t: float, scope: str = "global") -> Envelope[Any]:
    return example_event("flag.set", occurred_at=at(t), name=name, value=value, scope=scope)


#: A heartbeat older than the one its viewing session holds (first delivery or not).
NEWER_HEARTBEAT = Outcome(S.STALE, "a newer event of this viewing session is already applied")
UNKNOWN_SESSION = Outcome(S.REJECTED, "unknown or expired viewing session")


def statuses(outcomes: Sequence[Outcome]) -> list[ReceiptStatus]:
    return [outcome.status for outcome in outcomes]


def comparable(dump: dict[str, DumpEntry]) -> dict[str, tuple[str, Any, bool]]:
    """A dump with "has an expiry" instead of the expiry: it counts from processing time,
    which differs between two stores fed the same events."""
    return {key: (kind, value, expiry is not None) for key, (kind, value, expiry) in dump.items()}


# --- playback --------------------------------------------------------------------------


def test_playback_start_progress_stop_state(store: LiveStore) -> None:
    store.apply([subscribe("u1", "standard")])
    outcomes = store.apply(
        [
            playback("started", 10, "v1", position=0, episode="e1"),
            playback("progress", 70, "v1", position=60, episode="e1"),
        ]
    )
    assert outcomes == [STORED, STORED]
    session = store.viewing_session("v1")
    assert session is not None
    assert (session.user_id, session.title_id, session.episode_id) == ("u1", "t1", "e1")
    assert (session.position_seconds, session.duration_seconds, session.state) == (
        60,
        3600,
        "playing",
    )
    assert (session.device_kind, session.device_id) == ("tv", "living-room-tv-01")
    assert session.started_at == at(10)
    assert session.last_event_at == at(70)
    assert store.active_streams("u1", now=at(100)) == ["v1"]
    assert store.active_streams_total(now=at(100)) == 1

    assert store.apply([playback("stopped", 130, "v1", position=120, episode="e1")]) == [STORED]
    session = store.viewing_session("v1")
    assert session is not None
    assert (session.state, session.position_seconds, session.stop_reason) == (
        "stopped",
        120,
        "user",
    )
    assert store.active_streams("u1", now=at(140)) == []
    assert store.active_streams_total(now=at(140)) == 0
    [item] = store.continue_watching("u1")
    assert (item.title_id, item.episode_id, item.position_seconds) == ("t1", "e1", 120)
    assert (item.viewing_session_id, item.updated_at) == ("v1", at(130))

    # A heartbeat after the stop, or for a session never started, changes nothing.
    late = store.apply([playback("progress", 200, "v1", position=180)])
    assert statuses(late) == [S.STALE]
    unknown = store.apply([playback("progress", 200, "v-unknown", position=10)])
    assert statuses(unknown) == [S.REJECTED]
    assert store.viewing_session("v-unknown") is None


def test_older_heartbeat_never_moves_position_back(store: LiveStore) -> None:
    store.apply([subscribe("u1", "basic"), playback("started", 10, "v1")])
    late = playback("progress", 70, "v1", position=60)
    last = playback("progress", 100, "v1", position=90)
    outcomes = store.apply([last, late])
    assert statuses(outcomes) == [S.STORED, S.STALE]
    session = store.viewing_session("v1")
    assert session is not None
    assert (session.position_seconds, session.last_event_at) == (90, at(100))
    [item] = store.continue_watching("u1")
    assert item.position_seconds == 90
    # Heartbeats have no marker: redelivered, the stale one is decided again (stale again),
    # and the one the session holds is a duplicate.
    before = store.dump()
    assert store.apply([late, last]) == [NEWER_HEARTBEAT, DUPLICATE]
    assert store.dump() == before


def test_heartbeats_leave_no_marker_and_are_deduplicated_by_their_session(
    store: LiveStore,
) -> None:
    store.apply([subscribe("u1", "premium"), playback("started", 10, "v1")])
    beats = [playback("progress", 10 + 60 * i, "v1", position=60 * i) for i in (1, 2)]
    assert store.apply(beats) == [STORED, STORED]
    dump = store.dump()
    assert not {f"applied:{beat.event_id}" for beat in beats} & set(dump)
    assert store.counter("events:playback.progress") == 2

    # The session holds (occurred_at, event id) of its last event: that heartbeat again is a
    # duplicate, an older one is stale, and neither writes anything (not even an expiry).
    assert store.apply([beats[1], beats[0], beats[1]]) == [DUPLICATE, NEWER_HEARTBEAT, DUPLICATE]
    assert store.dump() == dump
    assert store.counter("events:playback.progress") == 2

    # Two heartbeats of the same millisecond: the event id decides, whatever the order.
    twins = sorted(
        (playback("progress", 200, "v1", position=190 + i) for i in range(2)),
        key=lambda event: str(event.event_id),
    )
    assert store.apply([twins[1], twins[0], twins[1]]) == [STORED, NEWER_HEARTBEAT, DUPLICATE]
    session = store.viewing_session("v1")
    assert session is not None and session.position_seconds == twins[1].payload.position_seconds
    assert store.counter("events:playback.progress") == 3

    # Once stopped, the session holds the stop: its heartbeats, old or new, are stale.
    store.apply([playback("stopped", 300, "v1", position=290)])
    late = playback("progress", 400, "v1", position=390)
    stopped = Outcome(S.STALE, "the viewing session is already stopped")
    assert store.apply([twins[1], late, late]) == [NEWER_HEARTBEAT, stopped, stopped]

    # A heartbeat of a session that never started is refused without a trace, each time.
    stray = playback("progress", 500, "v-unknown", position=10)
    before = store.dump()
    assert store.apply([stray, stray]) == [UNKNOWN_SESSION, UNKNOWN_SESSION]
    assert store.dump() == before
    assert store.counter("events:playback.progress") == 3

    # Erasure takes the session with it: its heartbeats are then unknown, as the first time.
    erase = example_event("user.erased", occurred_at=at(600), user_id="u1", reason="admin")
    store.apply([erase])
    assert store.apply(beats) == [UNKNOWN_SESSION, UNKNOWN_SESSION]
    assert not [key for key in store.dump() if key.startswith("viewing")]


def test_a_heartbeat_delivered_before_an_older_start_applies_when_redelivered(
    make_store: MakeStore,
) -> None:
    # The limit of deduplicating heartbeats by their session: one that arrives before the
    # start of its session (sent after it, with an older time) is refused, leaving nothing to
    # remember that by; delivered again once the start is there, it applies, as it would have
    # the first time in the right order. Players send a session's start before its heartbeats,
    # and the playback topic keeps a user's events in order, so this takes a misbehaving
    # producer. Every other event type keeps its marker and would be a duplicate here.
    plan, beat = subscribe("u1", "basic"), playback("progress", 70, "v1", position=60)
    start = playback("started", 10, "v1")
    store, in_order = make_store(), make_store()
    assert store.apply([plan, beat, start]) == [STORED, UNKNOWN_SESSION, STORED]
    assert store.apply([beat]) == [STORED]
    in_order.apply([plan, start, beat])
    assert comparable(store.dump()) == comparable(in_order.dump())


def test_concurrent_stream_limit_per_plan(store: LiveStore) -> None:
    assert store.apply([playback("started", 0, "v0", user="nobody")], allow_defer=False) == [
        Outcome(S.REJECTED, "no active subscription")
    ]
    store.apply([subscribe("u1", "basic"), subscribe("u2", "premium")])
    first, second = store.apply(
        [playback("started", 10, "v1"), playback("started", 20, "v2", title="t2")]
    )
    assert first == STORED
    assert second == Outcome(S.REJECTED, "concurrent stream limit 1 reached")
    assert store.viewing_session("v2") is None
    # Stopping frees the slot.
    store.apply([playback("stopped", 30, "v1", position=20)])
    assert store.apply([playback("started", 40, "v3")]) == [STORED]
    # A stream that stopped sending heartbeats stops counting after the timeout.
    timeout = store.config.heartbeat_timeout_s
    assert store.apply([playback("started", 40 + timeout + 1, "v4")]) == [STORED]
    assert store.active_streams("u1", now=at(40 + timeout + 2)) == ["v4"]

    premium = [playback("started", 100 + i, f"p{i}", user="u2") for i in range(5)]
    assert statuses(store.apply(premium)) == [S.STORED] * 4 + [S.REJECTED]
    assert store.apply([playback("started", 200, "p9", user="u2")])[0].reason == (
        "concurrent stream limit 4 reached"
    )

    # Upgrading raises the limit; a cancellation ends streaming once its end date passed.
    change = example_event(
        "subscription.plan_changed",
        occurred_at=at(300),
        user_id="u1",
        subscription_id="sub-u1",
        from_plan="basic",
        to_plan="standard",
    )
    store.apply([change])
    assert store.plan_of("u1") is not None and store.plan_of("u1") == "standard"
    assert store.apply([playback("started", 310, "v5")]) == [STORED]
    cancel = example_event(
        "subscription.canceled",
        occurred_at=at(400),
        user_id="u1",
        subscription_id="sub-u1",
        reason="user_request",
        ends_at=at(500),
    )
    store.apply([cancel])
    assert store.plan_of("u1", now=at(450)) == "standard"
    assert store.plan_of("u1", now=at(600)) is None
    store.apply([playback("stopped", 450, "v5", position=100)])
    assert statuses(store.apply([playback("started", 460, "v6")])) == [S.STORED]
    assert store.apply([playback("started", 600, "v7")]) == [
        Outcome(S.REJECTED, "no active subscription")
    ]


def test_events_from_a_simulated_past_stay_readable(store: LiveStore) -> None:
    # The simulator's clock starts in the past by default; expiry counts from processing,
    # so its state is there to read, with "now" passed as the simulated present.
    past = datetime(2025, 1, 15, 20, 0, tzinfo=UTC)
    offset = (past - BASE).total_seconds()
    store.apply(
        [
            subscribe("u1", "basic", offset),
            playback("started", offset + 1, "v1"),
            playback("progress", offset + 121, "v1", position=120),
        ]
    )
    session = store.viewing_session("v1")
    assert session is not None and session.position_seconds == 120
    assert store.active_streams("u1", now=past + timedelta(minutes=3)) == ["v1"]
    assert store.active_streams("u1") == []  # the wall clock is long past its heartbeats
    assert store.most_watched(past.date()) == [("t1", 1)]
    assert [title for title, _ in store.trending(now=past + timedelta(hours=1))] == ["t1"]


def test_continue_watching_order_and_finish(store: LiveStore) -> None:
    store.apply([subscribe("u1", "premium")])
    store.apply(
        [
            playback("started", 10, "v1", title="t1", position=100),
            playback("started", 15, "v3", title="t1", position=50),
            playback("started", 20, "v2", title="t2", position=200),
            playback("progress", 30, "v1", title="t1", position=300),
        ]
    )
    assert [item.title_id for item in store.continue_watching("u1")] == ["t1", "t2"]
    assert [item.title_id for item in store.continue_watching("u1", limit=1)] == ["t1"]
    # Past 95% the title is finished and leaves the list; a late heartbeat of another
    # session of it does not bring it back.
    store.apply([playback("stopped", 40, "v1", title="t1", position=3500)])
    assert [item.title_id for item in store.continue_watching("u1")] == ["t2"]
    assert store.apply([playback("progress", 35, "v3", title="t1", position=400)]) == [STORED]
    assert [item.title_id for item in store.continue_watching("u1")] == ["t2"]


# --- idempotency -----------------------------------------------------------------------


def one_of_each(user: str = "u1") -> list[Envelope[Any]]:
    """One event of every type the Redis sink consumes, in an order where each one applies."""
    events = [
        subscribe(user, "premium", 0),
        example_event(
            "subscription.plan_changed",
            occurred_at=at(1),
            user_id=user,
            subscription_id=f"sub-{user}",
            from_plan="premium",
            to_plan="standard",
        ),
        example_event(
            "subscription.renewed",
            occurred_at=at(2),
            user_id=user,
            subscription_id=f"sub-{user}",
            plan="standard",
            period_start=at(2),
            period_end=at(2) + timedelta(days=30),
        ),
        example_event(
            "session.login_started",
            occurred_at=at(3),
            user_id=user,
            session_id="s1",
            expires_at=at(3) + timedelta(hours=12),
        ),
        example_event(
            "session.refreshed",
            occurred_at=at(4),
            user_id=user,
            session_id="s1",
            expires_at=at(4) + timedelta(hours=13),
        ),
        upsert("t1", 1, ["drama", "comedy"], 5),
        playback("started", 6, "v1", user=user),
        playback("progress", 7, "v1", user=user, position=60),
        playback("stopped", 8, "v1", user=user, position=90),
        rate(user, "t1", 4, 9),
        retract(user, "t1", 10),
        rate(user, "t1", 5, 11),
        flag("player.autoplay", True, 12),
        flag("player.autoplay", False, 13, scope=f"user:{user}"),
        example_event(
            "session.ended", occurred_at=at(14), user_id=user, session_id="s1", reason="logout"
        ),
        example_event(
            "subscription.canceled",
            occurred_at=at(15),
            user_id=user,
            subscription_id=f"sub-{user}",
            reason="user_request",
            ends_at=at(15) + timedelta(days=3),
        ),
        upsert("t2", 1, ["drama"], 16),
        remove("t2", 2, 17),
        example_event("user.erased", occurred_at=at(18), user_id=user, reason="user_request"),
    ]
    assert {event.type for event in events} == set(event_types_for(Sink.REDIS))
    return events


def test_the_store_consumes_exactly_the_redis_event_types() -> None:
    assert set(event_types_for(Sink.REDIS)) == CONSUMED_TYPES


def redelivered(events: Sequence[Envelope[Any]]) -> list[Outcome]:
    """What :func:`one_of_each` answers once applied: duplicates, except the heartbeat. It
    has no marker, and its viewing session went with the user's erasure, so it is refused
    again as it would be the first time (changing nothing either way)."""
    return [UNKNOWN_SESSION if e.type == "playback.progress" else DUPLICATE for e in events]


def test_every_event_type_redelivered_is_a_duplicate(store: LiveStore) -> None:
    events = one_of_each()
    assert store.apply(events) == [STORED] * len(events)
    before = store.dump()
    for event in events:
        assert store.apply([event]) == redelivered([event]), event.type
    assert store.apply(events) == redelivered(events)
    assert store.dump() == before
    for event_type in CONSUMED_TYPES:
        expected = sum(1 for event in events if event.type == event_type)
        assert store.counter(f"events:{event_type}") == expected
    # Every event has its marker except the heartbeat.
    markers = {key.removeprefix("applied:") for key in before if key.startswith("applied:")}
    assert markers == {str(e.event_id) for e in events if e.type != "playback.progress"}


def test_event_types_of_other_sinks_are_rejected_untouched(store: LiveStore) -> None:
    others = [t for t in EVENT_TYPES if t not in CONSUMED_TYPES]
    outcomes = store.apply([example_event(event_type) for event_type in others])
    assert outcomes == [Outcome(S.REJECTED, "not consumed by the redis sink")] * len(others)
    assert store.dump() == {}


def test_replaying_a_full_batch_twice_changes_nothing(store: LiveStore) -> None:
    rng = random.Random(7)
    events = [subscribe(f"u{i}", "premium") for i in range(5)]
    events += [upsert(f"t{i}", 1, ["drama", "comedy"][: 1 + i % 2], 1) for i in range(4)]
    for n in range(60):
        user, title = f"u{n % 5}", f"t{n % 4}"
        events.append(playback("started", 10 + n, f"v{n}", user=user, title=title))
        events.append(playback("progress", 20 + n, f"v{n}", user=user, title=title, position=n))
        events.append(rate(user, title, rng.randint(1, 5), 30 + n))
    first = store.apply(events)
    snapshot = store.dump()
    # A heartbeat refused the first time (its start was over the plan's limit) is refused
    # again: it has no marker to remember the verdict, and nothing of it was written.
    refused = [e for e, o in zip(events, first, strict=True) if o.status is S.REJECTED]
    assert {e.type for e in refused} == {"playback.started", "playback.progress"}
    again = [
        o if e.type == "playback.progress" and o.status is S.REJECTED else dup(o)
        for e, o in zip(events, first, strict=True)
    ]
    assert store.apply(events) == again
    # Markers included, with their expiry: a redelivery must not even refresh them.
    assert store.dump() == snapshot
    stored = sum(
        1
        for e, o in zip(events, first, strict=True)
        if e.type == "playback.progress" and o == STORED
    )
    assert store.counter("events:playback.progress") == stored


def dup(outcome: Outcome) -> Outcome:
    if outcome == STORED:
        return DUPLICATE
    code = {S.STALE: "stale", S.REJECTED: "rejected"}[outcome.status]
    return Outcome(S.DUPLICATE, f"already processed: {code}: {outcome.reason}")


USERS = ("u1", "u2")
TITLES = ("t1", "t2", "t3")
GENRES = ("drama", "comedy", "horror")

_actions = st.one_of(
    st.tuples(st.just("subscribe"), st.sampled_from(USERS), st.sampled_from(["basic", "premium"])),
    st.tuples(st.just("change"), st.sampled_from(USERS)),
    st.tuples(st.just("cancel"), st.sampled_from(USERS), st.integers(-600, 600)),
    st.tuples(st.just("start"), st.integers(0, 4), st.sampled_from(USERS), st.sampled_from(TITLES)),
    st.tuples(st.just("progress"), st.integers(0, 4), st.integers(0, 3600)),
    st.tuples(st.just("stop"), st.integers(0, 4), st.integers(0, 3600)),
    st.tuples(st.just("rate"), st.sampled_from(USERS), st.sampled_from(TITLES), st.integers(1, 5)),
    st.tuples(st.just("retract"), st.sampled_from(USERS), st.sampled_from(TITLES)),
    st.tuples(
        st.just("upsert"),
        st.sampled_from(TITLES),
        st.integers(1, 4),
        st.lists(st.sampled_from(GENRES), min_size=1, max_size=3, unique=True),
    ),
    st.tuples(st.just("remove"), st.sampled_from(TITLES), st.integers(1, 4)),
    st.tuples(
        st.just("flag"),
        st.sampled_from(["a.b", "c"]),
        st.one_of(st.booleans(), st.integers(-5, 5), st.none()),
        st.sampled_from(["global", "user:u1"]),
    ),
    st.tuples(st.just("login"), st.sampled_from(USERS), st.integers(0, 2)),
    st.tuples(st.just("refresh"), st.sampled_from(USERS), st.integers(0, 2)),
    st.tuples(st.just("logout"), st.sampled_from(USERS), st.integers(0, 2)),
    st.tuples(st.just("erase"), st.sampled_from(USERS)),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Envelope[Any]]:
    """A random history of Redis-sink events, their times shuffled by up to a minute."""
    actions = draw(st.lists(_actions, max_size=40))
    owners: dict[int, tuple[str, str]] = {}
    events: list[Envelope[Any]] = []
    for index, action in enumerate(actions):
        t = index * 20 + draw(st.integers(-60, 60))
        when = at(t)
        kind = action[0]
        if kind == "subscribe":
            events.append(subscribe(action[1], action[2], t))
        elif kind == "change":
            events.append(
                example_event(
                    "subscription.plan_changed",
                    occurred_at=when,
                    user_id=action[1],
                    subscription_id=f"sub-{action[1]}",
                    from_plan="basic",
                    to_plan="standard",
                )
            )
        elif kind == "cancel":
            events.append(
                example_event(
                    "subscription.canceled",
                    occurred_at=when,
                    user_id=action[1],
                    subscription_id=f"sub-{action[1]}",
                    reason="user_request",
                    ends_at=when + timedelta(seconds=action[2]),
                )
            )
        elif kind == "start":
            owners[action[1]] = (action[2], action[3])
            events.append(playback("started", t, f"v{action[1]}", user=action[2], title=action[3]))
        elif kind in ("progress", "stop"):
            user, title = owners.get(action[1], ("u1", "t1"))
            name = "progress" if kind == "progress" else "stopped"
            vs = f"v{action[1]}"
            events.append(playback(name, t, vs, user=user, title=title, position=action[2]))
        elif kind == "rate":
            events.append(rate(action[1], action[2], action[3], t))
        elif kind == "retract":
            events.append(retract(action[1], action[2], t))
        elif kind == "upsert":
            events.append(upsert(action[1], action[2], action[3], t))
        elif kind == "remove":
            events.append(remove(action[1], action[2], t))
        elif kind == "flag":
            events.append(flag(action[1], action[2], t, scope=action[3]))
        elif kind in ("login", "refresh", "logout"):
            user, sid = action[1], f"s{action[2]}"
            if kind == "logout":
                events.append(
                    example_event(
                        "session.ended",
                        occurred_at=when,
                        user_id=user,
                        session_id=sid,
                        reason="logout",
                    )
                )
            else:
                events.append(
                    example_event(
                        "session.login_started" if kind == "login" else "session.refreshed",
                        occurred_at=when,
                        user_id=user,
                        session_id=sid,
                        expires_at=when + timedelta(hours=1 if kind == "login" else 2),
                    )
                )
        else:
            events.append(
                example_event("user.erased", occurred_at=when, user_id=action[1], reason="admin")
            )
    return events


def set_back_later(events: Sequence[Envelope[Any]], index: int) -> bool:
    """Whether ``events[index]`` is a heartbeat that a later start of its viewing session, with
    an older (occurred_at, event id), sets back: the one disorder in which a heartbeat, which
    has no marker, applies when redelivered (test_a_heartbeat_delivered_before_an_older_start_
    applies_when_redelivered)."""
    beat = events[index]
    if beat.type != "playback.progress":
        return False
    order = (to_ms(beat.occurred_at), str(beat.event_id))
    return any(
        event.type == "playback.started"
        and event.payload.viewing_session_id == beat.payload.viewing_session_id
        and (to_ms(event.occurred_at), str(event.event_id)) < order
        for event in events[index + 1 :]
    )


@st.composite
def redeliveries(draw: st.DrawFn) -> tuple[list[Envelope[Any]], list[Envelope[Any]], list[int]]:
    """(history, the history with redelivered copies after their originals, batch cuts).

    Any event may be redelivered except the heartbeats :func:`set_back_later` picks out: a
    player never sends a start after a heartbeat of the same session with a later time.
    """
    events = draw(histories())
    delivered = list(events)
    candidates = [i for i in range(len(events)) if not set_back_later(events, i)]
    for _ in range(draw(st.integers(0, len(candidates)))):
        original = draw(st.sampled_from(candidates))
        position = delivered.index(events[original])
        delivered.insert(draw(st.integers(position + 1, len(delivered))), events[original])
    cuts = sorted(draw(st.lists(st.integers(0, len(delivered)), max_size=4)))
    return events, delivered, cuts


def apply_in_batches(
    store: LiveStore,
    events: Sequence[Envelope[Any]],
    cuts: Sequence[int],
    *,
    allow_defer: bool = True,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    bounds = [0, *cuts, len(events)]
    for start, end in itertools.pairwise(bounds):
        outcomes += store.apply(events[start:end], allow_defer=allow_defer)
    return outcomes


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=redeliveries())
def test_random_redeliveries_end_in_the_state_of_the_deduplicated_history(
    make_store: MakeStore,
    case: tuple[list[Envelope[Any]], list[Envelope[Any]], list[int]],
) -> None:
    events, delivered, cuts = case
    once, redelivered = make_store(), make_store()
    try:
        # Final verdicts: a deferred event is not recorded, so its redelivery is no duplicate.
        expected = once.apply(events, allow_defer=False)
        outcomes = apply_in_batches(redelivered, delivered, cuts, allow_defer=False)
        seen: set[uuid.UUID] = set()
        first_outcomes = []
        for event, outcome in zip(delivered, outcomes, strict=True):
            if event.event_id in seen:
                if event.type == "playback.progress":
                    # No marker: decided again by its session, it can only change nothing.
                    assert outcome.status is not S.STORED
                else:
                    assert outcome.status is S.DUPLICATE
            else:
                seen.add(event.event_id)
                first_outcomes.append(outcome)
        assert first_outcomes == expected
        assert comparable(redelivered.dump()) == comparable(once.dump())
    finally:
        once.clear()
        redelivered.clear()


@pytest.mark.stack
@hypothesis_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=histories())
def test_both_implementations_build_the_same_keys(
    settings: Settings, events: list[Envelope[Any]]
) -> None:
    prefix = f"test-live-{uuid.uuid4().hex[:12]}"
    memory = InMemoryLiveStore(prefix=prefix)
    real = RedisLiveStore.from_settings(settings.redis, prefix=prefix)
    try:
        assert real.apply(events) == memory.apply(events)
        assert comparable(real.dump()) == comparable(memory.dump())
    finally:
        real.clear()
        real.close()


# --- ratings and rankings --------------------------------------------------------------


def test_rerating_replaces_and_retraction_subtracts(store: LiveStore) -> None:
    store.apply([rate("u1", "t1", 3, 0), rate("u2", "t1", 5, 1)])
    assert store.title_rating("t1") == (2, 8)
    store.apply([rate("u1", "t1", 4, 2)])
    assert store.title_rating("t1") == (2, 9)
    assert store.user_rating("u1", "t1") == 4
    store.apply([retract("u2", "t1", 3)])
    assert store.title_rating("t1") == (1, 4)
    assert store.user_rating("u2", "t1") is None
    # Retracting what is not there, or twice, changes nothing.
    assert statuses(store.apply([retract("u2", "t1", 4), retract("u3", "t1", 5)])) == [
        S.STORED,
        S.STORED,
    ]
    assert store.title_rating("t1") == (1, 4)
    store.apply([retract("u1", "t1", 6)])
    assert store.title_rating("t1") == (0, 0)
    assert store.top_rated() == []


def test_stale_rating_is_ignored(store: LiveStore) -> None:
    store.apply([rate("u1", "t1", 2, 100)])
    outcomes = store.apply([rate("u1", "t1", 5, 50), retract("u1", "t1", 60)])
    assert statuses(outcomes) == [S.STALE, S.STALE]
    assert store.title_rating("t1") == (1, 2)
    # A retraction's time guards too: an older rating cannot come back after it.
    store.apply([retract("u1", "t1", 200)])
    assert statuses(store.apply([rate("u1", "t1", 4, 150)])) == [S.STALE]
    assert store.title_rating("t1") == (0, 0)


def test_bayesian_average_one_five_star_vote_does_not_beat_many_good_ones(
    store: LiveStore,
) -> None:
    events = [upsert("hit", 1, ["drama"]), upsert("lucky", 1, ["drama", "comedy"])]
    # An ordinary catalogue: the global mean is well below 4.5.
    events += [rate(f"m{i}", "meh", 2 + i % 3, i) for i in range(30)]
    events += [rate(f"f{i}", "hit", 4 + i % 2, 100 + i) for i in range(40)]  # 4.5 average
    events.append(rate("one", "lucky", 5, 200))
    store.apply(events)
    ranking = store.top_rated(limit=3)
    assert [title for title, _ in ranking] == ["hit", "lucky", "meh"]
    count_hit, sum_hit = store.title_rating("hit")
    assert (count_hit, sum_hit) == (40, 180)
    c, m = store.config.bayes_c, store.config.bayes_m  # 10 votes of the prior mean, 3 stars
    assert ranking[0][1] == pytest.approx((c * m + 180) / (c + 40))
    assert ranking[1][1] == pytest.approx((c * m + 5) / (c + 1))
    assert [t for t, _ in store.top_rated(genre="drama")] == ["hit", "lucky"]
    assert [t for t, _ in store.top_rated(genre="comedy")] == ["lucky"]


def test_most_watched_per_day_and_trending(store: LiveStore) -> None:
    store.apply([subscribe(f"u{i}", "premium", -3 * 86_400) for i in range(12)])
    today, yesterday, old = BASE, BASE - timedelta(days=1), BASE - timedelta(days=5)

    def starts(day: datetime, title: str, count: int) -> list[Envelope[Any]]:
        offset = (day - BASE).total_seconds()
        return [
            playback("started", offset + i, f"{title}-{day:%m%d}-{i}", user=f"u{i}", title=title)
            for i in range(count)
        ]

    events = starts(old, "classic", 10) + starts(yesterday, "buzz", 4)
    events += starts(today, "fresh", 3) + starts(yesterday, "fresh", 1)
    store.apply(events)
    # The same session again (redelivered or resumed) is not a second view.
    store.apply(starts(today, "fresh", 3))
    assert store.most_watched(today.date()) == [("fresh", 3)]
    assert store.most_watched(yesterday.date()) == [("buzz", 4), ("fresh", 1)]
    assert store.most_watched(old.date()) == [("classic", 10)]
    assert store.most_watched(date(2000, 1, 1)) == []

    ranking = store.trending(now=BASE + timedelta(minutes=1))
    assert [title for title, _ in ranking] == ["fresh", "buzz", "classic"]
    scores = dict(ranking)
    # Decay: ten views five days ago weigh less than four yesterday.
    assert scores["classic"] < scores["buzz"] < scores["fresh"]
    # A week later everything has left the window.
    assert store.trending(now=BASE + timedelta(days=7)) == []


def test_rankings_per_genre(store: LiveStore) -> None:
    store.apply([subscribe("u1", "premium"), subscribe("u2", "premium")])
    store.apply([upsert("t1", 1, ["drama"]), upsert("t2", 1, ["comedy"])])
    store.apply(
        [
            playback("started", 10, "v1", user="u1", title="t1"),
            playback("started", 11, "v2", user="u2", title="t2"),
            playback("started", 12, "v3", user="u1", title="t2"),
        ]
    )
    assert store.most_watched(BASE.date(), genre="comedy") == [("t2", 2)]
    assert store.most_watched(BASE.date(), genre="drama") == [("t1", 1)]
    assert [t for t, _ in store.trending(now=at(60), genre="drama")] == ["t1"]
    assert [t for t, _ in store.trending(now=at(60))] == ["t2", "t1"]


# --- catalog ---------------------------------------------------------------------------


def test_catalog_events_invalidate_the_cache_and_keep_the_genre_index(store: LiveStore) -> None:
    store.put_cached_title("t1", '{"title": "cached"}')
    version = store.catalog_version()
    assert store.apply([upsert("t1", 2, ["drama", "comedy"])]) == [STORED]
    assert store.cached_title("t1") is None
    assert store.catalog_version() == version + 1
    assert store.title_genres("t1") == {"drama", "comedy"}
    assert store.genre_titles("drama") == {"t1"}

    store.put_cached_title("t1", '{"title": "cached"}')
    stale = store.apply([upsert("t1", 1, ["horror"]), upsert("t1", 2, ["horror"])])
    assert statuses(stale) == [S.STALE, S.STALE]
    assert store.cached_title("t1") == '{"title": "cached"}'
    assert store.title_genres("t1") == {"drama", "comedy"}
    assert store.catalog_version() == version + 1

    store.apply([rate("u1", "t1", 5)])
    assert [t for t, _ in store.top_rated(genre="comedy")] == ["t1"]
    store.apply([upsert("t1", 3, ["drama", "horror"])])
    assert store.genre_titles("comedy") == set()
    assert store.genre_titles("horror") == {"t1"}
    assert store.top_rated(genre="comedy") == []
    assert [t for t, _ in store.top_rated(genre="horror")] == ["t1"]

    assert store.apply([remove("t1", 4)]) == [STORED]
    assert store.title_removed("t1")
    assert store.title_genres("t1") == set()
    assert store.genre_titles("drama") == set() and store.genre_titles("horror") == set()
    assert store.top_rated() == [] and store.top_rated(genre="drama") == []
    assert store.catalog_version() == version + 3
    # An older snapshot cannot resurrect it; a newer one does, with its ranking.
    assert statuses(store.apply([upsert("t1", 3, ["drama"])])) == [S.STALE]
    assert store.title_removed("t1")
    store.apply([upsert("t1", 5, ["war"])])
    assert not store.title_removed("t1")
    assert store.title_version("t1") == 5
    assert [t for t, _ in store.top_rated(genre="war")] == ["t1"]


def test_removed_title_leaves_the_daily_rankings(store: LiveStore) -> None:
    long_ago = -40 * 86_400
    store.apply([subscribe("u1", "premium", long_ago), upsert("t1", 1, ["drama"], long_ago)])
    store.apply(
        [
            playback("started", long_ago + 10, "v0", title="t1"),
            playback("started", 10, "v1", title="t1"),
            playback("started", 11, "v2", title="t2"),
        ]
    )
    assert store.most_watched(BASE.date()) == [("t2", 1), ("t1", 1)]
    store.apply([remove("t1", 2, 20), playback("started", 30, "v3", title="t1")])
    assert store.most_watched(BASE.date()) == [("t2", 1)]
    # Every day it was ranked on, not only the days around the removal.
    assert store.most_watched((BASE + timedelta(seconds=long_ago)).date()) == []


# --- flags, sessions, erasure ----------------------------------------------------------


def test_flags_with_event_time_guard(store: LiveStore) -> None:
    store.apply(
        [
            flag("player.autoplay", True, 10),
            flag("config.max-bitrate", {"tv": 8000, "mobile": 2000}, 10),
            flag("player.autoplay", False, 10, scope="user:u1"),
        ]
    )
    outcomes = store.apply([flag("player.autoplay", False, 5)])
    assert statuses(outcomes) == [S.STALE]
    assert store.flags() == {
        "player.autoplay": True,
        "config.max-bitrate": {"mobile": 2000, "tv": 8000},
    }
    assert store.flags("user:u1") == {"player.autoplay": False}
    assert store.flags("user:u2") == {}
    store.apply([flag("player.autoplay", None, 20)])
    assert store.flags()["player.autoplay"] is None


def test_login_session_index_and_counters(store: LiveStore) -> None:
    def session(kind: str, t: float, sid: str, hours: float = 1) -> Envelope[Any]:
        if kind == "ended":
            return example_event(
                "session.ended", occurred_at=at(t), user_id="u1", session_id=sid, reason="logout"
            )
        return example_event(
            f"session.{kind}",
            occurred_at=at(t),
            user_id="u1",
            session_id=sid,
            expires_at=at(t) + timedelta(hours=hours),
        )

    store.apply([session("login_started", 0, "s1"), session("login_started", 1, "s2")])
    assert sorted(store.login_sessions("u1", now=at(10))) == ["s1", "s2"]
    store.apply([session("refreshed", 2, "s1", hours=3), session("ended", 3, "s2")])
    assert store.login_sessions("u1", now=at(2 * 3600)) == ["s1"]
    # A refresh never brings back a session that ended.
    store.apply([session("refreshed", 4, "s2")])
    assert store.login_sessions("u1", now=at(10)) == ["s1"]
    day = BASE.date().isoformat()
    assert store.counter(f"logins:{day}") == 2
    assert store.counter("events:session.refreshed") == 2


def test_user_erased_cleans_up_and_adjusts_rankings(store: LiveStore) -> None:
    store.apply([subscribe("u1", "premium"), subscribe("u2", "premium")])
    store.apply([upsert("t1", 1, ["drama"])])
    store.apply(
        [
            playback("started", 10, "v1", user="u1", title="t1"),
            playback("progress", 20, "v1", user="u1", title="t1", position=60),
            rate("u1", "t1", 5, 30),
            rate("u2", "t1", 3, 31),
            rate("u1", "t2", 4, 32),
            flag("player.autoplay", True, 33, scope="user:u1"),
            example_event(
                "session.login_started",
                occurred_at=at(34),
                user_id="u1",
                session_id="s1",
                expires_at=at(34) + timedelta(hours=1),
            ),
        ]
    )
    assert store.apply(
        [example_event("user.erased", occurred_at=at(40), user_id="u1", reason="user_request")]
    ) == [STORED]
    assert store.viewing_session("v1") is None
    assert store.active_streams("u1", now=at(41)) == []
    assert store.active_streams_total(now=at(41)) == 0
    assert store.continue_watching("u1") == []
    assert store.plan_of("u1") is None
    assert store.user_rating("u1", "t1") is None
    assert store.title_rating("t1") == (1, 3)
    assert store.title_rating("t2") == (0, 0)
    assert [t for t, _ in store.top_rated()] == ["t1"]
    assert store.top_rated()[0][1] == pytest.approx(3.0)
    assert store.flags("user:u1") == {}
    assert store.login_sessions("u1", now=at(41)) == []
    # u2 is untouched.
    assert store.user_rating("u2", "t1") == 3
    assert store.plan_of("u2") == "premium"
    # The user's older events, replayed after their markers are gone, stay out.
    replay = [
        rate("u1", "t1", 5, 30),
        playback("started", 10, "v9", user="u1"),
        subscribe("u1", "basic", 5),
    ]
    assert statuses(store.apply(replay)) == [S.STALE] * 3
    assert store.title_rating("t1") == (1, 3)


# --- order across topics ---------------------------------------------------------------
# The sink reads seven topics and Kafka orders them per partition only. A playback of a user
# whose subscription has not been read yet waits (deferred, without a trace); the rankings
# come out the same whether a title's catalog entry or its ratings come first.

NO_PLAN = missing_prerequisite("no active subscription")
WAITING = missing_prerequisite("waiting for an earlier event of this user")


def test_playback_before_any_subscription_waits_without_a_trace(make_store: MakeStore) -> None:
    store, without = make_store(), make_store()
    plan = subscribe("u2", "premium")
    batch = [
        playback("started", 10, "v1"),
        rate("u1", "t1", 4, 11),  # another topic: goes on
        playback("started", 12, "w1", user="u2"),  # another user: goes on
        playback("progress", 70, "v1", position=60),  # behind its session's start
        playback("stopped", 80, "v1", position=70),
    ]
    deferred = [batch[0], batch[3], batch[4]]
    store.apply([plan])
    assert store.apply(batch) == [NO_PLAN, STORED, STORED, WAITING, WAITING]
    # Exactly the state of the other events alone: no marker, no counter, no session, and
    # no scratch key left behind.
    without.apply([plan, batch[1], batch[2]])
    assert comparable(store.dump()) == comparable(without.dump())
    assert store.viewing_session("v1") is None
    assert store.apply(deferred) == [NO_PLAN, WAITING, WAITING]
    assert comparable(store.dump()) == comparable(without.dump())

    # The subscription arrives: offered again, the same events apply, in order.
    store.apply([subscribe("u1", "basic", 5)])
    assert store.apply(deferred) == [STORED] * 3
    session = store.viewing_session("v1")
    assert session is not None and (session.state, session.position_seconds) == ("stopped", 70)
    assert store.counter("events:playback.started") == 2
    # The heartbeat (no marker) is older than the stop its session now holds.
    assert store.apply(deferred) == [DUPLICATE, NEWER_HEARTBEAT, DUPLICATE]
    assert store.counter("events:playback.progress") == 1


def test_without_deferral_a_missing_subscription_is_final(store: LiveStore) -> None:
    start, beat = playback("started", 10, "v1"), playback("progress", 70, "v1", position=60)
    assert store.apply([start, beat], allow_defer=False) == [
        Outcome(S.REJECTED, "no active subscription"),
        Outcome(S.REJECTED, "unknown or expired viewing session"),
    ]
    recorded = store.dump()
    assert f"applied:{start.event_id}" in recorded
    # The heartbeat leaves nothing at all, not even a counter.
    assert f"applied:{beat.event_id}" not in recorded
    assert store.counter("events:playback.progress") == 0
    store.apply([subscribe("u1", "basic")])
    # Recorded: the verdict stays, even now that the subscription is there.
    first = "already processed: rejected: no active subscription"
    assert store.apply([start]) == [Outcome(S.DUPLICATE, first)]
    assert store.apply([start], allow_defer=False) == [Outcome(S.DUPLICATE, first)]
    assert store.viewing_session("v1") is None
    # ... so the heartbeat, decided again, is refused again.
    assert store.apply([beat, start]) == [UNKNOWN_SESSION, Outcome(S.DUPLICATE, first)]
    assert store.counter("events:playback.progress") == 0


def test_an_ended_or_erased_subscription_is_final_not_deferred(store: LiveStore) -> None:
    cancel = example_event(
        "subscription.canceled",
        occurred_at=at(1),
        user_id="u1",
        subscription_id="sub-u1",
        reason="user_request",
        ends_at=at(5),
    )
    erase = example_event("user.erased", occurred_at=at(100), user_id="u2", reason="admin")
    store.apply([subscribe("u1", "basic"), cancel, subscribe("u2", "basic"), erase])
    # Only a cancellation was ever seen for u3: the subscriptions topic is in order per user,
    # so nothing it could still bring would change the verdict.
    store.apply(
        [
            example_event(
                "subscription.canceled",
                occurred_at=at(1),
                user_id="u3",
                subscription_id="sub-u3",
                reason="user_request",
                ends_at=at(2),
            )
        ]
    )
    outcomes = store.apply(
        [
            playback("started", 10, "v1"),
            playback("started", 50, "v2", user="u2"),
            playback("started", 200, "v3", user="u2"),
            playback("started", 10, "v4", user="u3"),
        ]
    )
    assert outcomes == [
        Outcome(S.REJECTED, "no active subscription"),
        Outcome(S.STALE, "the user is erased"),
        Outcome(S.REJECTED, "no active subscription"),
        Outcome(S.REJECTED, "no active subscription"),
    ]
    assert not any(outcome.retryable for outcome in outcomes)


def test_waiting_holds_across_the_calls_of_one_batch(store: LiveStore) -> None:
    # The real store sends a batch in calls of 100 events: the start deferred in the first
    # call must still hold back its heartbeats in the second.
    store.apply([subscribe("u2", "premium")])
    filler = [playback("progress", 20 + i, "w1", user="u2", position=i) for i in range(1, 151)]
    batch = [
        playback("started", 10, "v1"),
        playback("started", 15, "w1", user="u2"),
        *filler,
        playback("progress", 300, "v1", position=200),
        playback("stopped", 310, "v1", position=210),
    ]
    outcomes = store.apply(batch)
    assert outcomes == [NO_PLAN] + [STORED] * 151 + [WAITING, WAITING]
    assert not [key for key in store.dump() if key.startswith("tmp:")]
    store.apply([subscribe("u1", "basic")])
    assert store.apply([batch[0], *batch[-2:]]) == [STORED] * 3


def test_rankings_do_not_depend_on_whether_catalog_or_ratings_come_first(
    make_store: MakeStore,
) -> None:
    catalog = [
        upsert("t1", 1, ["drama", "comedy"], 0),
        upsert("t2", 1, ["comedy"], 1),
        upsert("t1", 2, ["drama", "horror"], 50),
        upsert("t4", 1, ["war"], 60),  # never rated
    ]
    ratings = [rate(f"u{i}", f"t{1 + i % 3}", 1 + i * 7 % 5, 10 + i) for i in range(15)]
    ratings += [retract("u0", "t1", 40), retract("u9", "t4", 41)]
    orders = {
        "catalog first": catalog + ratings,
        "ratings first": ratings + catalog,
        "interleaved": ratings[:4]
        + catalog[:1]
        + ratings[4:11]
        + catalog[1:3]
        + ratings[11:]
        + catalog[3:],
        "one by one": [],
    }
    dumps = {}
    for name, events in orders.items():
        store = make_store()
        if name == "one by one":
            for event in orders["interleaved"]:
                assert store.apply([event]) == [STORED]
        else:
            assert store.apply(events) == [STORED] * len(events)
        dumps[name] = comparable(store.dump())
    reference = dumps.pop("catalog first")
    for name, dump in dumps.items():
        assert dump == reference, name
    store = make_store()
    store.apply(orders["ratings first"])
    assert {t for t, _ in store.top_rated(genre="horror")} == {"t1"}
    assert {t for t, _ in store.top_rated(genre="comedy")} == {"t2"}
    assert store.genre_titles("comedy") == {"t2"} and store.genre_titles("war") == {"t4"}
    assert {t for t, _ in store.top_rated()} == {"t1", "t2", "t3"}
    # t3 has no catalog entry (yet): ranked overall, in no genre.
    assert all(t != "t3" for g in GENRES for t, _ in store.top_rated(genre=g))


LIVE_TITLES = ("t1", "t2", "t3")


@st.composite
def live_streams(draw: st.DrawFn) -> dict[tuple[str, str], list[Envelope[Any]]]:
    """Events per partition ((topic, key) -> events in their order), each partition in an
    order where it applies. Within five minutes, so the heartbeat timeout prunes nothing
    (pruning ``streams:_all`` by the latest start seen depends on the interleaving of users;
    reads filter by time, so it never shows). Without erasure, title removals and plan
    changes: their effect on playback depends on the interleaving by nature (documented)."""
    streams: dict[tuple[str, str], list[Envelope[Any]]] = {}
    clock = itertools.count()

    def add(topic: str, key: str, event: Envelope[Any]) -> None:
        streams.setdefault((topic, key), []).append(event)

    for n in range(draw(st.integers(1, 3))):
        u = f"u{n}"
        if draw(st.booleans()):
            add(
                "subscriptions",
                u,
                subscribe(u, draw(st.sampled_from(["basic", "premium"])), next(clock)),
            )
        for k in range(draw(st.integers(0, 3))):
            vs, title = f"{u}-v{k}", draw(st.sampled_from(LIVE_TITLES))
            add("playback", u, playback("started", next(clock), vs, user=u, title=title))
            for beat in range(draw(st.integers(0, 2))):
                position = 60 * (beat + 1)
                add(
                    "playback",
                    u,
                    playback("progress", next(clock), vs, user=u, title=title, position=position),
                )
            if draw(st.booleans()):
                add(
                    "playback",
                    u,
                    playback(
                        "stopped",
                        next(clock),
                        vs,
                        user=u,
                        title=title,
                        position=draw(st.integers(0, 3600)),
                    ),
                )
        for title, stars in draw(
            st.lists(st.tuples(st.sampled_from(LIVE_TITLES), st.integers(0, 5)), max_size=4)
        ):
            event = (
                retract(u, title, next(clock)) if stars == 0 else rate(u, title, stars, next(clock))
            )
            add("ratings", u, event)
        if draw(st.booleans()):
            sid = f"{u}-s"
            add(
                "sessions",
                u,
                example_event(
                    "session.login_started",
                    occurred_at=at(next(clock)),
                    user_id=u,
                    session_id=sid,
                    expires_at=at(3600),
                ),
            )
    for title in LIVE_TITLES:
        for version in range(1, draw(st.integers(0, 3)) + 1):
            genres = draw(st.lists(st.sampled_from(GENRES), min_size=1, max_size=3, unique=True))
            add("catalog", title, upsert(title, version, genres, next(clock)))
    return streams


def live_interleave(
    streams: Sequence[list[Envelope[Any]]], rng: random.Random
) -> list[Envelope[Any]]:
    queues = [list(stream) for stream in streams if stream]
    merged: list[Envelope[Any]] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged


def deliver_like_the_worker(
    store: LiveStore, events: Sequence[Envelope[Any]], rng: random.Random
) -> list[Envelope[Any]]:
    """Random batches, deferred events first in the next batch, then offered again until
    nothing moves; what still waits then is applied with allow_defer=False (and returned)."""
    waiting: list[Envelope[Any]] = []
    position = 0
    while position < len(events) or waiting:
        fresh = list(events[position : position + rng.randint(1, 6)])
        position += len(fresh)
        batch = waiting + fresh
        outcomes = store.apply(batch)
        still = [e for e, o in zip(batch, outcomes, strict=True) if o.retryable]
        if not fresh and len(still) == len(waiting):
            store.apply(still, allow_defer=False)
            return still
        waiting = still
    return []


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(streams=live_streams(), rng=st.randoms(use_true_random=False))
def test_any_interleaving_of_the_topics_ends_in_the_same_state(
    make_store: MakeStore,
    streams: dict[tuple[str, str], list[Envelope[Any]]],
    rng: random.Random,
) -> None:
    # The reference: subscriptions first, then every other partition, one after the other.
    ordered = sorted(streams.items(), key=lambda item: item[0][0] != "subscriptions")
    history = [event for _, events in ordered for event in events]
    reference, store = make_store(), make_store()
    try:
        reference.apply(history, allow_defer=False)
        left = deliver_like_the_worker(store, live_interleave(list(streams.values()), rng), rng)
        # Only the playback of users who never subscribe is still waiting at the end.
        subscribed = {key for topic, key in streams if topic == "subscriptions"}
        assert all(event.payload.user_id not in subscribed for event in left)
        assert comparable(store.dump()) == comparable(reference.dump())
    finally:
        reference.clear()
        store.clear()


# --- the real store only ---------------------------------------------------------------


@pytest.mark.stack
def test_session_ended_revokes_the_api_session_key(
    redis_store: RedisLiveStore, settings: Settings
) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    key = f"{redis_store.prefix}:session:s1"
    client.set(key, "api-owned session")
    ended = example_event(
        "session.ended", occurred_at=at(0), user_id="u1", session_id="s1", reason="revoked"
    )
    assert redis_store.apply([ended]) == [STORED]
    assert client.exists(key) == 0
    assert redis_store.apply([ended]) == [DUPLICATE]
    client.close()


@pytest.mark.stack
def test_user_erased_ends_every_login_session_of_the_api(
    redis_store: RedisLiveStore, settings: Settings
) -> None:
    """An erasure published without DELETE /me (an operator's, or one whose own revocation
    failed) still logs the person out everywhere; other users' sessions stay."""
    from polystream.api.login.store import LoginSession, RedisSessionStore

    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    sessions = RedisSessionStore(client, redis_store.prefix)
    for digest, user in (("d1", "u1"), ("d2", "u1"), ("d3", "u2")):
        sessions.create(digest, LoginSession(f"s-{digest}", user, "user", 0), 3600)
    erase = example_event("user.erased", occurred_at=at(40), user_id="u1", reason="admin")
    assert redis_store.apply([erase]) == [STORED]
    assert sessions.touch("d1", 3600) is None and sessions.touch("d2", 3600) is None
    assert sessions.list("u1") == []
    assert client.exists(f"{redis_store.prefix}:auth:_user:u1") == 0
    kept = sessions.touch("d3", 3600)
    assert kept is not None and kept.user_id == "u2"
    client.close()


@pytest.mark.stack
def test_key_layout_and_expiry(redis_store: RedisLiveStore, settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    p, config = redis_store.prefix, redis_store.config
    login = example_event(
        "session.login_started",
        occurred_at=at(1),
        user_id="u1",
        session_id="s1",
        expires_at=at(1) + timedelta(hours=1),
    )
    start, rating = playback("started", 2, "v1"), rate("u1", "t1", 4, 3)
    beat = playback("progress", 4, "v1", position=2)
    redis_store.apply([subscribe("u1", "basic"), login, start, rating, beat])
    day = at(2).date().isoformat()

    def ttl_s(key: str) -> float:
        return int(client.pttl(f"{p}:{key}")) / 1000

    assert ttl_s(f"applied:{start.event_id}") == pytest.approx(config.marker_ttl_s, abs=60)
    assert client.exists(f"{p}:applied:{beat.event_id}") == 0  # heartbeats have no marker
    assert ttl_s("viewing:v1") == pytest.approx(config.viewing_ttl_s, abs=60)
    assert ttl_s("streams:u1") == pytest.approx(config.index_ttl_s, abs=60)
    assert ttl_s("viewings:u1") == pytest.approx(config.index_ttl_s, abs=60)
    assert ttl_s("continue:u1") == pytest.approx(config.continue_ttl_s, abs=60)
    assert ttl_s(f"rank:watched:{day}") == pytest.approx(config.ranking_days * 86_400, abs=60)
    assert ttl_s("sessions:u1") == pytest.approx(3600 - 1, abs=60)
    # What must outlive any expiry has none.
    for key in ("plan:u1", "rating:u1", "ratings:t1", "ratings:_global", "rank:top_rated"):
        assert ttl_s(key) == -0.001, key
    assert client.hgetall(f"{p}:viewing:v1")["state"] == "playing"
    assert client.zscore(f"{p}:streams:u1", "v1") == float(to_ms(at(4)))
    assert client.hmget(f"{p}:viewing:v1", "t", "eid") == [str(to_ms(at(4))), str(beat.event_id)]
    assert client.hgetall(f"{p}:rating:u1") == {"t1": f"4|{to_ms(at(3))}|{rating.event_id}"}
    client.close()


@pytest.mark.stack
def test_missing_script_is_loaded_and_the_batch_goes_through(settings: Settings) -> None:
    # A configuration no other store uses renders a script the server has never seen: the
    # first EVALSHA meets NOSCRIPT, exactly as after a restart (without flushing the script
    # cache that other users of the server rely on).
    config = LiveStoreConfig(bayes_c=10 + random.random())
    store = RedisLiveStore.from_settings(
        settings.redis, prefix=f"test-live-{uuid.uuid4().hex[:12]}", config=config
    )
    try:
        events = one_of_each()
        assert store.apply(events) == [STORED] * len(events)
        assert store.apply(events) == redelivered(events)
    finally:
        store.clear()
        store.close()


@pytest.mark.stack
def test_a_failing_step_names_its_event_and_stays_retryable(
    redis_store: RedisLiveStore, settings: Settings
) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    # A key of the wrong type makes one step fail inside the script (WRONGTYPE).
    client.set(f"{redis_store.prefix}:plan:u2", "not a hash")
    ok, bad, later = subscribe("u1", "basic"), subscribe("u2", "basic"), subscribe("u3", "basic")
    with pytest.raises(PermanentStoreError) as failure:
        redis_store.apply([ok, bad, later])
    assert failure.value.event_id == bad.event_id
    assert "WRONGTYPE" in failure.value.reason
    # Nothing of the failed step was recorded: once the cause is gone it applies.
    client.delete(f"{redis_store.prefix}:plan:u2")
    assert redis_store.apply([ok, bad, later]) == [DUPLICATE, STORED, DUPLICATE]
    assert redis_store.counter("events:subscription.started") == 3
    client.close()


def test_in_memory_expiry_follows_the_injected_clock() -> None:
    now = [BASE]
    store = InMemoryLiveStore(prefix="clock", clock=lambda: now[0])
    store.apply([subscribe("u1", "basic"), playback("started", 10, "v1")])
    assert store.viewing_session("v1") is not None
    now[0] = at(10) + timedelta(seconds=store.config.viewing_ttl_s + 1)
    assert store.viewing_session("v1") is None
    assert store.active_streams("u1") == []
    assert store.plan_of("u1") == "basic"


def test_unreachable_redis_is_a_transient_error() -> None:
    store = RedisLiveStore("redis://127.0.0.1:1/0", prefix="test-live-unreachable")
    try:
        with pytest.raises(TransientStoreError):
            store.apply([rate("u1", "t1", 4)])
        with pytest.raises(TransientStoreError):
            store.top_rated()
    finally:
        store.close()


def test_the_store_does_not_connect_when_built() -> None:
    store = RedisLiveStore("redis://127.0.0.1:1/0")
    assert store.sink is Sink.REDIS
    assert store.apply([example_event("user.registered")]) == [
        Outcome(S.REJECTED, "not consumed by the redis sink")
    ]
    store.close()


# --- throughput ------------------------------------------------------------------------


def mixed_events(count: int, users: int, start: datetime) -> list[Envelope[Any]]:
    """Playback heartbeats and ratings as the simulator sends them: each user watches one
    title at a time and rates now and then."""
    rng = random.Random(11)
    events: list[Envelope[Any]] = []
    sessions: dict[int, tuple[str, str, int]] = {}
    for n in range(count):
        user = rng.randrange(users)
        when = start + timedelta(milliseconds=n * 5)
        uid = f"bench-u{user}"
        if rng.random() < 0.15:
            stars = rng.randint(1, 5)
            events.append(
                example_event(
                    "rating.submitted",
                    occurred_at=when,
                    user_id=uid,
                    title_id=f"bench-t{rng.randrange(500)}",
                    stars=stars,
                    review=None,
                )
            )
            continue
        if user not in sessions:
            sessions[user] = (f"bench-v{n}", f"bench-t{rng.randrange(500)}", 0)
            kind = "started"
        else:
            kind = "progress"
        vs, title, position = sessions[user]
        position = min(position + 30, 3000)
        sessions[user] = (vs, title, position)
        events.append(
            example_event(
                f"playback.{kind}",
                occurred_at=when,
                viewing_session_id=vs,
                user_id=uid,
                title_id=title,
                episode_id=None,
                position_seconds=position,
                duration_seconds=3600,
            )
        )
    return events


@pytest.mark.stack
@pytest.mark.slow
def test_throughput_of_mixed_playback_and_rating_batches(settings: Settings) -> None:
    store = RedisLiveStore.from_settings(
        settings.redis, prefix=f"test-live-bench-{uuid.uuid4().hex[:8]}"
    )
    try:
        start = utc_now() - timedelta(minutes=10)
        store.apply([subscribe(f"bench-u{i}", "premium", -3600) for i in range(2000)])
        events = mixed_events(50_000, 2000, start)
        batches = [events[i : i + 1000] for i in range(0, len(events), 1000)]
        began = time.perf_counter()
        for batch in batches:
            outcomes = store.apply(batch)
        elapsed = time.perf_counter() - began
        assert all(outcome.status is S.STORED for outcome in outcomes)
        rate_per_s = len(events) / elapsed
        print(f"\nlive store: {len(events)} events in {elapsed:.2f}s = {rate_per_s:,.0f} events/s")
        assert rate_per_s > 5_000
    finally:
        store.clear()
        store.close()
