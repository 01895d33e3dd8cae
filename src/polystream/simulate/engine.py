"""The workload: a discrete-event simulation of a streaming platform, deterministic per seed.

Everything happens on a simulated clock (milliseconds since the epoch) that starts at
``SimConfig.start``. Actors schedule their next actions on one heap; the loop pops the earliest
action, which emits events stamped with its time and schedules follow-ups strictly later. So
the stream is in non-decreasing ``occurred_at`` order as a whole, hence per key as well, and
every fact appears after the facts it depends on (a payment after its subscription, playback
after the user registered and the title was published, a rating after the user registered).

Randomness comes from one ``random.Random(seed)``; ids are UUIDv7 built from the simulated time
and that RNG; nothing reads the wall clock. The same configuration therefore yields the same
bytes, and a shorter run is a prefix of a longer one.

Who does what (see docs/simulator.md for the numbers):

* the catalogue is published first (titles, posters, relations), then edited over time;
* users sign up over ``Behaviour.signup_days`` (a share of them are existing customers
  migrated at launch, whose billing periods started before the simulation, so renewals
  begin on day one), set preferences, subscribe, and pay monthly; renewals fail at a
  realistic rate and are retried (dunning) before the subscription is canceled;
* each user has 1-4 devices; a device logs in, watches a few things (heartbeats every
  ``heartbeat_s`` seconds), refreshes its session while active, and logs out or lets the
  session expire; concurrent streams respect the plan's limit, except for a few attempts
  that the player reports as stopped with ``stream_limit``;
* ratings follow what is watched (Zipf popularity times the user's genre taste);
* flags change now and then.
"""

from __future__ import annotations

import calendar
import hashlib
import heapq
import ipaddress
import itertools
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate, islice
from random import Random
from typing import Any, Final, Generic, TypeVar

from polystream.bus.topology import topic_of
from polystream.domain import events as ev
from polystream.domain.events import (
    EVENT_TYPES,
    PLANS,
    AnyEvent,
    AssetKind,
    ImageType,
    Payload,
    PlanCode,
    decode,
    spec_of,
)
from polystream.simulate import vocabulary as vocab
from polystream.simulate.catalog import (
    CatalogEntry,
    Relation,
    SimTitle,
    derive_relations,
    imported_catalog,
    jaccard,
    new_episode,
    synopsis,
    synthetic_catalog,
)
from polystream.simulate.posters import image_png
from polystream.simulate.wire import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Encoder,
    SimEvent,
    TimeText,
    from_ms,
    json_bool,
    quote,
    quote_opt,
    to_ms,
    trace_text,
    uuid7_text,
    validated_event,
)

#: Default start of the simulated clock: fixed, so runs are reproducible without --start.
DEFAULT_START: Final = datetime(2025, 1, 1, tzinfo=UTC)

# argon2id parameters of the one hash per run (argon2-cffi's defaults, what the API uses).
_ARGON2_TIME_COST: Final = 3
_ARGON2_MEMORY_KIB: Final = 65536
_ARGON2_PARALLELISM: Final = 4


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the simulated population behaves. Rates are per user (or device) unless noted.

    The defaults aim at a plausible mix; tests turn rare behaviours up to see them quickly.
    """

    #: Share of users who are existing customers, migrated in the first simulated hour.
    existing_share: float = 0.3
    #: The other users sign up over this many days (front-loaded: launch marketing).
    signup_days: float = 30.0
    #: Share of new users who never subscribe (they log in and browse).
    never_subscribe_share: float = 0.05
    #: Share of new users who subscribe days after signing up rather than minutes.
    late_subscribe_share: float = 0.1
    #: Devices per user: weights of 1, 2, 3, 4 devices.
    device_weights: tuple[float, ...] = (45, 30, 17, 8)
    #: Median logins per device per day (log-normal across users).
    logins_per_device_day: float = 0.6
    #: Share of logins that only browse (no playback).
    browse_only_share: float = 0.15
    #: After a viewing, chance of watching something else in the same login.
    another_viewing_share: float = 0.4
    #: After a completed episode, chance of autoplaying the next one.
    autoplay_next_share: float = 0.7
    #: Share of viewings watched to the end.
    complete_share: float = 0.45
    #: When a user is at the plan's stream limit, share of attempts made anyway.
    over_limit_attempt_share: float = 0.1
    #: Chance of rating a title after finishing it / after watching part of it.
    rate_after_complete: float = 0.3
    rate_after_partial: float = 0.05
    #: Chance that a browse-only login rates a title from its page (seen elsewhere).
    rate_when_browsing: float = 0.1
    #: Share of ratings with a review text, and of ratings later retracted.
    review_share: float = 0.15
    retract_share: float = 0.03
    #: Share of payment attempts that fail (processor declines), and of retries that succeed.
    payment_failure_share: float = 0.065
    retry_success_share: float = 0.5
    #: Dunning: hours after the failed renewal at which it is retried, then canceled.
    retry_delays_h: tuple[float, ...] = (24.0, 72.0, 120.0)
    #: Per billing period: chance of a voluntary cancellation / a plan change / a refund.
    monthly_cancel_share: float = 0.04
    monthly_plan_change_share: float = 0.04
    refund_share: float = 0.01
    #: Chance that a user whose subscription ended subscribes again later.
    resubscribe_share: float = 0.35
    #: Mean days between profile changes / preference snapshots of a user.
    profile_update_days: float = 60.0
    preferences_update_days: float = 30.0
    #: Share of users who ask for erasure at some point of the first months.
    erasure_share: float = 0.01
    #: Mean hours between catalogue edits / relation changes / flag changes (global).
    catalog_edit_hours: float = 2.0
    relation_change_hours: float = 8.0
    flag_change_hours: float = 6.0
    #: Mean days between new titles / title removals (global).
    new_title_days: float = 1.0
    title_removal_days: float = 10.0
    #: Share of sessions ended by an explicit logout (the rest expire).
    logout_share: float = 0.35
    #: Login session lifetime and how often an active session is refreshed (sliding expiry).
    session_ttl_s: int = 3600
    refresh_every_s: int = 1200
    #: Seconds of media (and simulated time) between two playback.progress heartbeats.
    heartbeat_s: int = 120

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if (name.endswith(("_share", "_complete", "_partial", "_browsing"))
                    and not 0.0 <= value <= 1.0):  # fmt: skip
                raise ValueError(f"{name} must be within 0..1")
        if len(self.device_weights) != 4 or min(self.device_weights) < 0:
            raise ValueError("device_weights needs 4 non-negative weights (1, 2, 3, 4 devices)")
        if not 1 <= self.heartbeat_s <= 600:
            raise ValueError("heartbeat_s must be within 1..600 seconds")
        if not 0 < self.refresh_every_s < self.session_ttl_s:
            raise ValueError("refresh_every_s must be positive and shorter than session_ttl_s")
        if self.session_ttl_s - self.refresh_every_s <= self.heartbeat_s + 1200:
            # A session must not expire between two heartbeats or during a pause between
            # viewings (up to ~17 minutes).
            raise ValueError("session_ttl_s must exceed refresh_every_s + heartbeat_s + 20 min")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. Equal configurations give byte-identical streams."""

    seed: int = 0
    users: int = 1000
    #: Synthetic titles; ignored when ``catalog`` is given.
    titles: int = 300
    start: datetime = DEFAULT_START
    source: str = "simulator"
    #: The password every simulated user registers with (default ``polystream-sim-<seed>``).
    password: str | None = None
    #: A ready argon2id hash to use instead of computing one (tests save the ~0.1 s).
    password_hash: str | None = None
    #: An imported catalogue (``catalog.load_catalog``) replacing the synthetic one.
    catalog: tuple[CatalogEntry, ...] | None = None
    #: Publish a generated poster (and some backdrops) per title.
    posters: bool = True
    #: Stop after publishing the catalogue (titles, posters, relations).
    catalog_only: bool = False
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("users must be at least 1")
        if self.catalog is None and self.titles < 1:
            raise ValueError("titles must be at least 1")
        if self.catalog is not None and not self.catalog:
            raise ValueError("an imported catalogue needs at least one title")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if not 1970 <= self.start.year <= datetime.now(UTC).year:
            raise ValueError("start must be between 1970 and the current year")

    @property
    def effective_password(self) -> str:
        return self.password if self.password is not None else f"polystream-sim-{self.seed}"


def password_hash(password: str, seed: int) -> str:
    """A real argon2id PHC hash of ``password`` with a salt derived from ``seed``.

    One hash per run, shared by every simulated user: hashing 100k passwords with argon2
    takes hours by design, and a deterministic salt keeps the output reproducible. So every
    simulated account can actually log in with the documented password.
    """
    from argon2.low_level import Type, hash_secret

    salt = hashlib.sha256(f"polystream-simulator-salt:{seed}".encode()).digest()[:16]
    return hash_secret(
        password.encode(),
        salt,
        time_cost=_ARGON2_TIME_COST,
        memory_cost=_ARGON2_MEMORY_KIB,
        parallelism=_ARGON2_PARALLELISM,
        hash_len=32,
        type=Type.ID,
    ).decode("ascii")


def add_months(t_ms: int, months: int = 1) -> int:
    """The same day and time ``months`` calendar months later (day clamped: Jan 31 -> Feb 28)."""
    moment = from_ms(t_ms)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return to_ms(moment.replace(year=year, month=month, day=day))


# Subscription states. PENDING: started, first payment not captured yet.
_PENDING, _ACTIVE, _PAST_DUE, _CANCELING, _ENDED = range(5)
T = TypeVar("T")
_PLAN_CODES: Final = tuple(plan.value for plan in PlanCode)
_PLAN_WEIGHTS: Final = (30, 45, 25)
_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TOPIC: Final = {event_type: topic_of(event_type).value for event_type in EVENT_TYPES}


class _Weighted(Generic[T]):
    """``rng.choices(items, weights)[0]`` with the cumulative weights computed once.

    Draws exactly like ``random.choices`` (one ``random()`` per pick, bisect over cumulative
    weights), minus rebuilding the tables on every call, which dominated the profile.
    """

    __slots__ = ("_cum", "_hi", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]
        self._hi = len(self._cum) - 1

    @classmethod
    def table(cls, rows: Sequence[tuple[T, int]]) -> _Weighted[T]:
        return cls([item for item, _ in rows], [weight for _, weight in rows])

    def pick(self, rng: Random) -> T:
        return self._items[bisect(self._cum, rng.random() * self._total, 0, self._hi)]


_CARD_BRANDS: Final = _Weighted.table(vocab.CARD_BRAND_WEIGHTS)
_DEVICE_KINDS: Final = _Weighted.table(vocab.DEVICE_KIND_WEIGHTS)
_GENRES: Final = _Weighted.table(vocab.GENRE_WEIGHTS)
_FAILURES: Final = _Weighted.table(vocab.PAYMENT_FAILURE_WEIGHTS)
_REFUND_REASONS: Final = _Weighted.table(vocab.REFUND_REASON_WEIGHTS)
_MATURITY_LIMITS: Final = _Weighted(("18+", "16+", "13+"), (85, 10, 5))
_PLANS: Final = _Weighted(_PLAN_CODES, _PLAN_WEIGHTS)
_COUNTRIES: Final = _Weighted(
    [(country, languages) for country, _, languages in vocab.COUNTRIES],
    [weight for _, weight, _ in vocab.COUNTRIES],
)


class _Sub:
    __slots__ = ("failures", "period_end", "period_start", "plan", "status", "sub_id", "user")

    def __init__(self, sub_id: str, user: _User, plan: str) -> None:
        self.sub_id = sub_id
        self.user = user
        self.plan = plan
        self.period_start = 0
        self.period_end = 0
        self.status = _PENDING
        self.failures = 0


class _Device:
    __slots__ = (
        "device_id", "expires", "ip", "json", "kind", "last_refresh", "session", "trace",
        "user", "user_agent",
    )  # fmt: skip

    def __init__(self, user: _User, device_id: str, kind: str, ip: str, user_agent: str) -> None:
        self.user = user
        self.device_id = device_id
        self.kind = kind
        self.json = f'{{"kind":"{kind}","device_id":"{device_id}"}}'
        self.ip = ip
        self.user_agent = user_agent
        self.session: str | None = None
        self.trace = ""
        self.expires = 0
        self.last_refresh = 0


class _User:
    __slots__ = (
        "birth_year", "card", "country", "devices", "display_name", "erased", "erasing",
        "favorites", "first", "languages", "last", "logins_per_day", "progress", "ratings",
        "serial", "streams", "sub", "taste", "user_id",
    )  # fmt: skip

    def __init__(self, serial: int, user_id: str) -> None:
        self.serial = serial
        self.user_id = user_id
        self.first: tuple[str, str] = ("", "")
        self.last: tuple[str, str] = ("", "")
        self.display_name = ""
        self.country = ""
        self.languages: tuple[str, ...] = ()
        self.birth_year = 0
        self.taste: dict[str, float] = {}
        self.favorites: list[str] = []
        self.devices: list[_Device] = []
        self.sub: _Sub | None = None
        self.card: tuple[str, str, str] = ("", "", "")
        self.streams = 0
        # title_id -> stars; dict (not set) so iteration order never depends on hashing.
        self.ratings: dict[str, int] = {}
        # title_id -> (item index, position): continue watching, most recent last.
        self.progress: dict[str, tuple[int, int]] = {}
        self.erased = False
        self.erasing = False
        self.logins_per_day = 1.0


class _Viewing:
    __slots__ = (
        "counted", "device", "head", "item", "pos", "reason", "start_pos", "stop_pos", "tail",
        "title", "trace",
    )  # fmt: skip

    def __init__(self, device: _Device, title: SimTitle, item: int, pos: int) -> None:
        self.device = device
        self.title = title
        self.item = item
        self.start_pos = pos
        self.pos = pos
        self.stop_pos = pos
        self.reason = "user"
        self.counted = True
        self.head = ""
        self.tail = ""
        self.trace = ""


class _Sampler:
    """Weighted choice of a live title by popularity (bisect over cumulative weights)."""

    def __init__(self, titles: list[SimTitle]) -> None:
        self.live = [title for title in titles if not title.removed]
        self.cum = list(accumulate(title.popularity for title in self.live))
        self.total = self.cum[-1] if self.cum else 0.0

    def pick(self, rng: Random) -> SimTitle:
        index = bisect(self.cum, rng.random() * self.total)
        return self.live[min(index, len(self.live) - 1)]


Handler = Callable[[int, Any], None]


class Simulation:
    """One run of the workload. Iterate :meth:`events` once."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.b = config.behaviour
        self.rng = Random(config.seed)
        self.enc = Encoder(self.rng, config.source)
        self._ptime = TimeText()  # payload instants: a separate day cache from occurred_at
        # The catalogue needs no users; skip the deliberately slow hash when only it is wanted.
        self.hash = config.password_hash or (
            "" if config.catalog_only else password_hash(config.effective_password, config.seed)
        )
        self.start_ms = to_ms(config.start)
        self.latest_year = config.start.year
        self._heap: list[tuple[int, int, Handler, Any]] = []
        self._seq = itertools.count()
        self._out: list[SimEvent] = []
        self.users: list[_User] = []
        self.titles: list[SimTitle] = []
        self.by_id: dict[str, SimTitle] = {}
        self.relations: dict[tuple[str, str, str], float] = {}
        self.sampler = _Sampler([])
        self._people: tuple[list[str], list[str]] | None = None
        self._serial = 0
        self._email_changes = 0
        self.hb_ms = self.b.heartbeat_s * 1000
        self.ttl_ms = self.b.session_ttl_s * 1000
        self.refresh_ms = self.b.refresh_every_s * 1000
        self._cursor = self.start_ms
        self._device_counts = _Weighted((1, 2, 3, 4), self.b.device_weights)
        self._arrivals: list[tuple[int, bool]] = []
        self._next_arrival = 0

    # -- plumbing --------------------------------------------------------------------------

    def _at(self, t: int, handler: Handler, arg: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), handler, arg))

    def _emit(self, model: type[Payload], t: int, key: str, trace: str, payload: str) -> None:
        event_type = model.event_type
        self._out.append(
            SimEvent(event_type, _TOPIC[event_type], key,
                     self.enc.envelope(event_type, t, key, trace, payload))
        )  # fmt: skip

    def _emit_validated(
        self, model: type[Payload], t: int, trace: str, payload: dict[str, Any]
    ) -> None:
        value = validated_event(
            model, payload, t_ms=t, rng=self.rng, source=self.config.source, trace=trace
        )
        key = payload[spec_of(model).key_field]
        self._out.append(SimEvent(model.event_type, _TOPIC[model.event_type], key, value))

    def _id(self, t: int) -> str:
        return uuid7_text(t, self.rng)

    def _trace(self) -> str:
        return trace_text(self.rng)

    def _between(self, low_ms: int, high_ms: int) -> int:
        return self.rng.randint(low_ms, high_ms)

    def _exp_ms(self, mean_ms: float) -> int:
        # At least a second: two actions of one actor never share a millisecond by accident.
        return max(1000, int(self.rng.expovariate(1.0 / mean_ms)))

    def events(self) -> Iterator[SimEvent]:
        out = self._out
        yield from self._bootstrap_catalog()
        if self.config.catalog_only:
            return
        self._bootstrap_world(self._cursor)
        heap = self._heap
        pop = heapq.heappop
        while heap:
            t, _, handler, arg = pop(heap)
            handler(t, arg)
            if out:
                yield from out
                out.clear()

    def _drain(self) -> Iterator[SimEvent]:
        yield from self._out
        self._out.clear()

    # -- catalogue -------------------------------------------------------------------------

    def _bootstrap_catalog(self) -> Iterator[SimEvent]:
        """Publish the catalogue, one event per simulated millisecond; sets ``_cursor``.

        A generator, so a consumer measuring throughput counts the (validated, slower)
        catalogue events as they are made rather than after all of them.
        """
        rng = self.rng
        t = self.start_ms
        if self.config.catalog is not None:
            self.titles = imported_catalog(rng, self.config.catalog)
        else:
            self.titles = synthetic_catalog(
                rng, self.config.titles, t_ms=t, latest_year=self.latest_year
            )
        self.by_id = {title.title_id: title for title in self.titles}
        self.sampler = _Sampler(self.titles)
        trace = self._trace()
        # Titles first, then their images, then the relations between them: a relation
        # never points at a title that has not been published yet.
        for title in self.titles:
            self._emit_validated(ev.TitleUpserted, t, trace, title.payload)
            t += 1
            yield from self._drain()
        if self.config.posters:
            for title in self.titles:
                t = self._assets(t, title, trace)
                yield from self._drain()
        for a, b, kind, weight in derive_relations(rng, self.titles):
            self.relations[(a, b, kind)] = weight
            self._emit_relation_added(t, trace, (a, b, kind, weight))
            t += 1
            yield from self._drain()
        self._cursor = t

    def _assets(self, t: int, title: SimTitle, trace: str, step: int = 1) -> int:
        # step 0 outside the bootstrap: an action emits at its own time only, or a later
        # action on the heap could emit an earlier time after it.
        kinds = [AssetKind.POSTER]
        if self.rng.random() < 0.25:
            kinds.append(AssetKind.BACKDROP)
        for kind in kinds:
            data = image_png(self.rng, kind)
            payload = {
                "asset_id": self._id(t),
                "title_id": title.title_id,
                "kind": kind.value,
                "content_type": ImageType.PNG.value,
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "data_base64": _b64(data),
            }
            self._emit_validated(ev.AssetUploaded, t, trace, payload)
            t += step
        return t

    def _emit_relation_added(self, t: int, trace: str, relation: Relation) -> None:
        a, b, kind, weight = relation
        payload = {"from_title_id": a, "to_title_id": b, "kind": kind, "weight": weight}
        self._emit_validated(ev.RelationAdded, t, trace, payload)

    def _on_catalog_edit(self, t: int, _: Any) -> None:
        self._at(t + self._exp_ms(self.b.catalog_edit_hours * HOUR_MS), self._on_catalog_edit, None)
        if not self.sampler.live:
            return
        rng = self.rng
        title = self.sampler.pick(rng)
        payload = dict(title.payload)
        payload["version"] = title.version + 1
        roll = rng.random()
        if title.is_series and roll < 0.35:
            seasons = [dict(season) for season in payload["seasons"]]
            if rng.random() < 0.3 and len(seasons) < 100:
                number = max(season["number"] for season in seasons) + 1
                episodes = [
                    new_episode(rng, title.title_id, number, episode, 45)
                    for episode in range(1, rng.randint(6, 10) + 1)
                ]
                seasons.append({"number": number, "title": None, "episodes": episodes})
            else:
                last = seasons[-1]
                number = max(episode["number"] for episode in last["episodes"]) + 1
                if len(last["episodes"]) < 500:
                    last["episodes"] = [
                        *last["episodes"],
                        new_episode(rng, title.title_id, last["number"], number, 45),
                    ]
            payload["seasons"] = seasons
        elif roll < 0.65:
            missing = [
                s for s in vocab.SUBTITLE_LANGUAGES if s not in payload["subtitle_languages"]
            ]
            if missing and len(payload["subtitle_languages"]) < 20:
                payload["subtitle_languages"] = [
                    *payload["subtitle_languages"],
                    rng.choice(missing),
                ]
            else:
                payload["synopsis"] = synopsis(rng)
        else:
            base = payload.get("synopsis") or synopsis(rng)
            extra = rng.choice(vocab.SYNOPSIS_EXTRA)
            payload["synopsis"] = base if len(base) + len(extra) > 4000 else f"{base} {extra}"
        title.payload = payload
        title.refresh_items()
        self._emit_validated(ev.TitleUpserted, t, self._trace(), payload)

    def _people_pool(self) -> tuple[list[str], list[str]]:
        if self._people is None:
            directors = [d for title in self.titles for d in title.directors]
            actors = [
                member["name"]
                for title in self.titles
                for member in (title.payload.get("people") or {}).get("cast") or ()
            ]
            self._people = (
                list(dict.fromkeys(directors)) or ["Ines Marchand"],
                list(dict.fromkeys(actors)) or ["Lena Vogt"],
            )
        return self._people

    def _on_new_title(self, t: int, _: Any) -> None:
        self._at(t + self._exp_ms(self.b.new_title_days * DAY_MS), self._on_new_title, None)
        rng = self.rng
        fresh = synthetic_catalog(rng, 1, t_ms=t, latest_year=self.latest_year)[0]
        directors, actors = self._people_pool()
        fresh.payload["people"] = {
            "directors": [rng.choice(directors)],
            "cast": [{"name": name, "character": None}
                     for name in rng.sample(actors, min(len(actors), rng.randint(2, 6)))],
        }  # fmt: skip
        fresh.payload["year"] = from_ms(t).year
        fresh.franchise = None
        # A new release is among the most popular titles for a while.
        fresh.popularity = 1.0 / rng.randint(2, 30)
        self.titles.append(fresh)
        self.by_id[fresh.title_id] = fresh
        self.sampler = _Sampler(self.titles)
        trace = self._trace()
        self._emit_validated(ev.TitleUpserted, t, trace, fresh.payload)
        if self.config.posters:
            self._at(t + self._between(1000, 60_000), self._on_new_assets, (fresh, trace))
        self._at(t + self._between(60_000, 600_000), self._on_new_relations, fresh)

    def _on_new_assets(self, t: int, arg: tuple[SimTitle, str]) -> None:
        title, trace = arg
        if not title.removed:
            self._assets(t, title, trace, step=0)

    def _on_new_relations(self, t: int, title: SimTitle) -> None:
        if title.removed:
            return
        others = [o for o in self.sampler.live if o is not title]
        scored = sorted(
            ((jaccard(title.genres, o.genres), i, o)
             for i, o in enumerate(self.rng.sample(others, min(12, len(others))))),
            key=lambda item: (-item[0], item[1]),
        )  # fmt: skip
        trace = self._trace()
        for score, _, other in scored[:3]:
            if score <= 0:
                continue
            key = (title.title_id, other.title_id, "similar")
            weight = round(0.1 + 0.9 * score, 2)
            self.relations[key] = weight
            self._emit_relation_added(t, trace, (*key, weight))

    def _on_relation_change(self, t: int, _: Any) -> None:
        self._at(
            t + self._exp_ms(self.b.relation_change_hours * HOUR_MS), self._on_relation_change, None
        )
        rng = self.rng
        if self.relations and rng.random() < 0.4:
            keys = list(self.relations)
            a, b, kind = keys[rng.randrange(len(keys))]
            del self.relations[(a, b, kind)]
            payload = {"from_title_id": a, "to_title_id": b, "kind": kind}
            self._emit_validated(ev.RelationRemoved, t, self._trace(), payload)
            return
        if len(self.sampler.live) < 2:
            return
        a_title = self.sampler.pick(rng)
        b_title = self.sampler.pick(rng)
        if a_title is b_title:
            return
        key = (a_title.title_id, b_title.title_id, "similar")
        weight = round(0.1 + 0.9 * jaccard(a_title.genres, b_title.genres), 2)
        self.relations[key] = weight
        self._emit_relation_added(t, self._trace(), (*key, weight))

    def _on_title_removal(self, t: int, _: Any) -> None:
        self._at(t + self._exp_ms(self.b.title_removal_days * DAY_MS), self._on_title_removal, None)
        live = self.sampler.live
        if len(live) < 10:
            return
        # Licences that expire are rarely the hits: pick among the less popular half.
        ranked = sorted(live, key=lambda title: title.popularity)[: len(live) // 2]
        candidates = [title for title in ranked if title.watching == 0]
        if not candidates:
            return
        title = candidates[self.rng.randrange(len(candidates))]
        title.removed = True
        self.sampler = _Sampler(self.titles)
        gone = title.title_id
        self.relations = {k: w for k, w in self.relations.items() if gone not in (k[0], k[1])}
        payload = {"title_id": gone, "version": title.version + 1}
        title.payload = {**title.payload, "version": title.version + 1}
        self._emit_validated(ev.TitleRemoved, t, self._trace(), payload)

    # -- flags -----------------------------------------------------------------------------

    def _flag_payload(self, name: str) -> tuple[Any, str]:
        rng = self.rng
        if name == "player.next-episode-countdown":
            return {"enabled": rng.random() < 0.8, "seconds": rng.randint(5, 15)}, "global"
        if name == "ui.home-layout":
            return rng.choice(("rows", "grid", "hero")), "global"
        if name == "runtime.heartbeat-seconds":
            return self.b.heartbeat_s, "global"
        if name == "runtime.max-bitrate-kbps":
            return rng.choice((4000, 8000, 16000, 25000)), "global"
        if name == "ops.maintenance-banner":
            return (None if rng.random() < 0.7 else "Scheduled maintenance tonight"), "global"
        live = [user for user in self.users[-500:] if not user.erasing]
        if live:
            user = live[rng.randrange(len(live))]
            return rng.random() < 0.5, f"user:{user.user_id}"
        return False, "global"

    _FLAGS: Final = (
        "player.next-episode-countdown", "ui.home-layout", "runtime.heartbeat-seconds",
        "runtime.max-bitrate-kbps", "ops.maintenance-banner", "experiment.new-recommendations",
    )  # fmt: skip

    def _emit_flag(self, t: int, name: str) -> None:
        value, scope = self._flag_payload(name)
        payload = {"name": name, "value": value, "scope": scope}
        self._emit_validated(ev.FlagSet, t, self._trace(), payload)

    def _on_flag(self, t: int, _: Any) -> None:
        self._at(t + self._exp_ms(self.b.flag_change_hours * HOUR_MS), self._on_flag, None)
        self._emit_flag(t, self.rng.choice(self._FLAGS))

    # -- the world -------------------------------------------------------------------------

    def _bootstrap_world(self, cursor: int) -> None:
        rng = self.rng
        b = self.b
        for name in self._FLAGS[:5]:
            self._emit_flag(cursor, name)
            cursor += 1
        t0 = cursor + 1000
        existing = round(self.config.users * b.existing_share)
        arrivals = []
        for index in range(self.config.users):
            if index < existing:
                at = t0 + rng.randrange(HOUR_MS)
            else:
                at = t0 + int(rng.random() ** 1.3 * b.signup_days * DAY_MS)
            arrivals.append((at, index, index < existing))
        # One pending arrival on the heap at a time: a heap of 100k future sign-ups would
        # make every push and pop of the whole run slower.
        self._arrivals = [(at, migrated) for at, _, migrated in sorted(arrivals)]
        self._schedule_arrival()
        self._at(t0 + self._exp_ms(b.catalog_edit_hours * HOUR_MS), self._on_catalog_edit, None)
        self._at(t0 + self._exp_ms(b.new_title_days * DAY_MS), self._on_new_title, None)
        self._at(
            t0 + self._exp_ms(b.relation_change_hours * HOUR_MS), self._on_relation_change, None
        )
        self._at(t0 + self._exp_ms(b.title_removal_days * DAY_MS), self._on_title_removal, None)
        self._at(t0 + self._exp_ms(b.flag_change_hours * HOUR_MS), self._on_flag, None)

    # -- users -----------------------------------------------------------------------------

    def _new_card(self) -> tuple[str, str, str]:
        rng = self.rng
        token = "tok_" + "".join(rng.choices(_ALNUM, k=24))
        brand = _CARD_BRANDS.pick(rng)
        return token, brand, f"{rng.randrange(10_000):04d}"

    def _new_device(self, user: _User, t: int) -> _Device:
        rng = self.rng
        kind = _DEVICE_KINDS.pick(rng)
        if rng.random() < 0.2:
            ip = str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64)))
        else:
            ip = _ipv4(rng)
        device_id = f"{kind.replace('_', '-')}-{rng.getrandbits(40):010x}"
        return _Device(user, device_id, kind, ip, rng.choice(vocab.DEVICE_AGENTS[kind]))

    def _schedule_arrival(self) -> None:
        if self._next_arrival < len(self._arrivals):
            at, migrated = self._arrivals[self._next_arrival]
            self._next_arrival += 1
            self._at(at, self._on_register, migrated)

    def _on_register(self, t: int, migrated: bool) -> None:
        self._schedule_arrival()
        rng = self.rng
        b = self.b
        self._serial += 1
        user = _User(self._serial, self._id(t))
        user.first = rng.choice(vocab.FIRST_NAMES)
        user.last = rng.choice(vocab.LAST_NAMES)
        user.display_name = (
            user.first[0] if rng.random() < 0.6 else f"{user.first[0]} {user.last[0][0]}."
        )
        country, languages = _pick_country(rng)
        user.country = country
        user.languages = languages
        user.birth_year = self.latest_year - rng.randint(18, 75)
        favorites: list[str] = []
        while len(favorites) < rng.randint(2, 4):
            genre = _GENRES.pick(rng)
            if genre not in favorites:
                favorites.append(genre)
        user.favorites = favorites
        user.taste = {genre: 1.8 for genre in favorites}
        for genre in rng.sample([g for g, _ in vocab.GENRE_WEIGHTS if g not in favorites], 2):
            user.taste[genre] = 0.35
        user.card = self._new_card()
        user.logins_per_day = min(4.0, max(0.05, rng.lognormvariate(0.0, 0.7)))
        count = self._device_counts.pick(rng)
        user.devices = [self._new_device(user, t) for _ in range(count)]
        self.users.append(user)
        # "+seed": runs with other seeds never claim the same address on a shared stack.
        email = (f"{user.first[1]}.{user.last[1]}{user.serial}+{self.config.seed}"
                 f"@{rng.choice(vocab.EMAIL_DOMAINS)}")
        payload = (
            f'{{"user_id":"{user.user_id}","email":"{email}","display_name":'
            f'{quote(user.display_name)},"country":"{country}","birth_year":{user.birth_year},'
            f'"password_hash":"{self.hash}"}}'
        )
        self._emit(ev.UserRegistered, t, user.user_id, self._trace(), payload)

        if rng.random() < 0.85:
            self._at(t + self._between(20_000, 600_000), self._on_preferences, user)
        else:
            self._at(
                t + self._exp_ms(b.preferences_update_days * DAY_MS), self._on_preferences, user
            )
        if migrated:
            self._at(t + self._between(2000, 20_000), self._on_subscribe, (user, True))
            first_login = t + self._between(60_000, 12 * HOUR_MS)
        else:
            roll = rng.random()
            if roll < b.never_subscribe_share:
                first_login = t + self._between(60_000, 600_000)
            elif roll < b.never_subscribe_share + b.late_subscribe_share:
                self._at(t + self._between(DAY_MS, 10 * DAY_MS), self._on_subscribe, (user, False))
                first_login = t + self._between(60_000, 600_000)
            else:
                subscribe_at = t + self._between(60_000, 1_800_000)
                self._at(subscribe_at, self._on_subscribe, (user, False))
                first_login = subscribe_at + self._between(60_000, 1_800_000)
        self._at(first_login, self._on_login, user.devices[0])
        for device in user.devices[1:]:
            self._at(t + self._next_login_gap(user), self._on_login, device)
        self._at(t + self._exp_ms(b.profile_update_days * DAY_MS), self._on_profile, user)
        if rng.random() < b.erasure_share:
            self._at(t + self._between(2 * DAY_MS, 90 * DAY_MS), self._on_erase, user)

    def _on_preferences(self, t: int, user: _User) -> None:
        if user.erasing:
            return
        rng = self.rng
        self._at(
            t + self._exp_ms(self.b.preferences_update_days * DAY_MS), self._on_preferences, user
        )
        if rng.random() < 0.3:
            # Taste drifts: a new favourite joins, the oldest may leave.
            genre = _GENRES.pick(rng)
            if genre not in user.favorites:
                user.favorites = [genre, *user.favorites][:4]
                user.taste[genre] = 1.8
        subtitles = rng.random() < 0.4
        language = user.languages[0]
        payload = (
            f'{{"user_id":"{user.user_id}","genres":{_json_list(user.favorites)},'
            f'"languages":{_json_list(user.languages)},"subtitles":{json_bool(subtitles)},'
            f'"subtitle_language":{quote_opt(language if subtitles else None)},'
            f'"autoplay_next_episode":{json_bool(rng.random() < 0.85)},'
            f'"autoplay_previews":{json_bool(rng.random() < 0.5)},'
            f'"maturity_limit":"{_MATURITY_LIMITS.pick(rng)}"}}'
        )
        self._emit(ev.PreferencesUpdated, t, user.user_id, self._trace(), payload)

    def _on_profile(self, t: int, user: _User) -> None:
        if user.erasing:
            return
        rng = self.rng
        self._at(t + self._exp_ms(self.b.profile_update_days * DAY_MS), self._on_profile, user)
        email = display_name = country = birth_year = "null"
        roll = rng.random()
        if roll < 0.5:
            user.display_name = f"{user.first[0]} {user.last[0]}"[:80]
            display_name = quote(user.display_name)
        elif roll < 0.75:
            user.country, user.languages = _pick_country(rng)
            country = f'"{user.country}"'
        elif roll < 0.9:
            self._email_changes += 1
            # "first.last.N@" never collides with a registration address ("first.lastN@").
            email = (
                f'"{user.first[1]}.{user.last[1]}.{self._email_changes}'
                f'@{rng.choice(vocab.EMAIL_DOMAINS)}"'
            )
        else:
            user.birth_year = max(1900, user.birth_year + rng.choice((-1, 1)))
            birth_year = str(user.birth_year)
        payload = (
            f'{{"user_id":"{user.user_id}","email":{email},"display_name":{display_name},'
            f'"country":{country},"birth_year":{birth_year}}}'
        )
        self._emit(ev.UserProfileUpdated, t, user.user_id, self._trace(), payload)

    def _on_erase(self, t: int, user: _User) -> None:
        if user.erasing:
            return
        if user.streams or any(device.session for device in user.devices):
            # Erasure is requested from a quiet account (support desk); try again later.
            self._at(t + self._between(HOUR_MS, 6 * HOUR_MS), self._on_erase, user)
            return
        user.erasing = True
        trace = self._trace()
        sub = user.sub
        if sub is not None and sub.status != _ENDED:
            sub.status = _ENDED
            self._emit_cancel(t, sub, "account_erased", t, trace)
        self._at(t + self._between(1000, 3000), self._on_erased, (user, trace))

    def _on_erased(self, t: int, arg: tuple[_User, str]) -> None:
        user, trace = arg
        user.erased = True
        payload = f'{{"user_id":"{user.user_id}","reason":"user_request"}}'
        self._emit(ev.UserErased, t, user.user_id, trace, payload)

    # -- billing ---------------------------------------------------------------------------

    def _on_subscribe(self, t: int, arg: tuple[_User, bool]) -> None:
        user, migrated = arg
        if user.erasing or (user.sub is not None and user.sub.status != _ENDED):
            return
        rng = self.rng
        sub = _Sub(self._id(t), user, _PLANS.pick(rng))
        user.sub = sub
        if migrated:
            # Paid in the legacy system before the simulation: the current period started up
            # to a month ago, so renewals are spread over the first simulated month.
            sub.period_end = t + self._between(HOUR_MS, 30 * DAY_MS)
            sub.period_start = add_months(sub.period_end, -1)
            sub.status = _ACTIVE
            self._at(sub.period_end, self._on_renewal_due, sub)
            self._plan_period(t, sub)
        else:
            sub.period_start = t
            sub.period_end = add_months(t)
            self._at(t + self._between(1000, 4000), self._on_first_payment, sub)
        ptime = self._ptime
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{user.user_id}","plan":"{sub.plan}",'
            f'"period_start":"{ptime(sub.period_start)}","period_end":"{ptime(sub.period_end)}"}}'
        )
        self._emit(ev.SubscriptionStarted, t, user.user_id, self._trace(), payload)

    def _pay(self, t: int, sub: _Sub, success: bool) -> str | None:
        """Emit a payment attempt for ``sub``'s plan; the payment id if it succeeded."""
        rng = self.rng
        user = sub.user
        plan = PLANS[PlanCode(sub.plan)]
        payment_id = self._id(t)
        token, brand, last4 = user.card
        head = (
            f'{{"payment_id":"{payment_id}","subscription_id":"{sub.sub_id}",'
            f'"user_id":"{user.user_id}","amount_cents":{plan.price_cents},'
            f'"currency":"{plan.currency}","card_token":"{token}","card_brand":"{brand}",'
            f'"card_last4":"{last4}"'
        )
        if success:
            self._emit(ev.PaymentSucceeded, t, user.user_id, self._trace(), head + "}")
            if rng.random() < self.b.refund_share:
                self._at(
                    t + self._between(DAY_MS, 5 * DAY_MS),
                    self._on_refund,
                    (sub, payment_id, plan.price_cents, plan.currency),
                )
            return payment_id
        reason = _FAILURES.pick(rng)
        self._emit(
            ev.PaymentFailed, t, user.user_id, self._trace(),
            f'{head},"failure_reason":"{reason}"}}',
        )  # fmt: skip
        if reason in ("expired_card", "card_declined", "fraud_suspected"):
            user.card = self._new_card()  # the customer updates the card before the retry
        return None

    def _on_first_payment(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.status != _PENDING:
            return
        if self._pay(t, sub, self.rng.random() >= self.b.payment_failure_share):
            sub.status = _ACTIVE
            sub.failures = 0
            self._at(sub.period_end, self._on_renewal_due, sub)
            self._plan_period(t, sub)
            return
        sub.failures += 1
        if sub.failures < 3:
            self._at(t + self._between(2 * MINUTE_MS, 20 * MINUTE_MS), self._on_first_payment, sub)
        else:
            self._at(t + self._between(1000, 5000), self._on_cancel_unpaid, sub)

    def _plan_period(self, t: int, sub: _Sub) -> None:
        """Things that may happen during the paid period that just began."""
        rng = self.rng
        span = sub.period_end - t
        if span <= 2000:
            return
        if rng.random() < self.b.monthly_cancel_share:
            self._at(t + self._between(1000, span - 1000), self._on_cancel_voluntary, sub)
        if rng.random() < self.b.monthly_plan_change_share:
            self._at(t + self._between(1000, span - 1000), self._on_plan_change, sub)

    def _on_renewal_due(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.user.sub is not sub:
            return
        if sub.status == _CANCELING:
            sub.status = _ENDED  # access ends at ends_at == period_end; nothing to publish
            self._maybe_resubscribe(t, sub.user)
            return
        if sub.status != _ACTIVE:
            return
        payment_id = self._pay(t, sub, self.rng.random() >= self.b.payment_failure_share)
        if payment_id is not None:
            self._at(t + self._between(300, 1500), self._on_renewed, (sub, payment_id))
            return
        sub.status = _PAST_DUE
        sub.failures = 1
        delay = int(self.b.retry_delays_h[0] * HOUR_MS)
        self._at(t + delay + self._between(0, HOUR_MS), self._on_renewal_retry, sub)

    def _on_renewal_retry(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.status != _PAST_DUE:
            return
        payment_id = self._pay(t, sub, self.rng.random() < self.b.retry_success_share)
        if payment_id is not None:
            self._at(t + self._between(300, 1500), self._on_renewed, (sub, payment_id))
            return
        sub.failures += 1
        # Retry k (1-based) runs retry_delays_h[k-1] hours after the failed renewal; after
        # failures == k + 1 the next one is due, unless that was the last.
        delays = self.b.retry_delays_h
        done = sub.failures - 1
        if done < len(delays):
            delay = int((delays[done] - delays[done - 1]) * HOUR_MS)
            self._at(t + max(HOUR_MS, delay), self._on_renewal_retry, sub)
        else:
            self._at(t + self._between(1000, 5000), self._on_cancel_unpaid, sub)

    def _on_renewed(self, t: int, arg: tuple[_Sub, str]) -> None:
        sub, payment_id = arg
        if sub.user.erasing or sub.status not in (_ACTIVE, _PAST_DUE):
            return
        # The new period continues the old one, even when a retry captured it days late.
        sub.period_start = sub.period_end
        sub.period_end = add_months(sub.period_start)
        sub.status = _ACTIVE
        sub.failures = 0
        self._at(sub.period_end, self._on_renewal_due, sub)
        self._plan_period(t, sub)
        ptime = self._ptime
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"plan":"{sub.plan}","period_start":"{ptime(sub.period_start)}",'
            f'"period_end":"{ptime(sub.period_end)}","payment_id":"{payment_id}"}}'
        )
        self._emit(ev.SubscriptionRenewed, t, sub.user.user_id, self._trace(), payload)

    def _emit_cancel(self, t: int, sub: _Sub, reason: str, ends_at: int, trace: str) -> None:
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"reason":"{reason}","ends_at":"{self._ptime(ends_at)}"}}'
        )
        self._emit(ev.SubscriptionCanceled, t, sub.user.user_id, trace, payload)

    def _on_cancel_unpaid(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.status not in (_PENDING, _PAST_DUE):
            return
        sub.status = _ENDED
        self._emit_cancel(t, sub, "payment_failed", t, self._trace())
        self._maybe_resubscribe(t, sub.user)

    def _on_cancel_voluntary(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.status != _ACTIVE or sub.user.sub is not sub:
            return
        sub.status = _CANCELING
        self._emit_cancel(t, sub, "user_request", sub.period_end, self._trace())

    def _maybe_resubscribe(self, t: int, user: _User) -> None:
        if self.rng.random() < self.b.resubscribe_share:
            self._at(t + self._between(DAY_MS, 45 * DAY_MS), self._on_subscribe, (user, False))

    def _on_plan_change(self, t: int, sub: _Sub) -> None:
        if sub.user.erasing or sub.status != _ACTIVE or sub.user.sub is not sub:
            return
        to_plan = self.rng.choice([code for code in _PLAN_CODES if code != sub.plan])
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"from_plan":"{sub.plan}","to_plan":"{to_plan}"}}'
        )
        sub.plan = to_plan
        self._emit(ev.SubscriptionPlanChanged, t, sub.user.user_id, self._trace(), payload)

    def _on_refund(self, t: int, arg: tuple[_Sub, str, int, str]) -> None:
        sub, payment_id, amount, currency = arg
        if sub.user.erasing:
            return
        reason = _REFUND_REASONS.pick(self.rng)
        payload = (
            f'{{"payment_id":"{payment_id}","refund_id":"{self._id(t)}",'
            f'"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"amount_cents":{amount},"currency":"{currency}","reason":"{reason}"}}'
        )
        self._emit(ev.PaymentRefunded, t, sub.user.user_id, self._trace(), payload)

    # -- sessions --------------------------------------------------------------------------

    def _next_login_gap(self, user: _User) -> int:
        return max(
            10 * MINUTE_MS,
            self._exp_ms(DAY_MS / (user.logins_per_day * self.b.logins_per_device_day)),
        )

    @staticmethod
    def _can_watch(user: _User, t: int) -> bool:
        sub = user.sub
        if sub is None:
            return False
        status = sub.status
        return status in (_ACTIVE, _PAST_DUE) or (status == _CANCELING and t < sub.period_end)

    def _on_login(self, t: int, device: _Device) -> None:
        user = device.user
        if user.erasing or device.session is not None:
            return
        rng = self.rng
        session_id = self._id(t)
        device.session = session_id
        device.trace = self._trace()
        device.expires = t + self.ttl_ms
        device.last_refresh = t
        payload = (
            f'{{"session_id":"{session_id}","user_id":"{user.user_id}","method":"password",'
            f'"device":{device.json},"ip_address":"{device.ip}",'
            f'"user_agent":{quote(device.user_agent)},"expires_at":"{self._ptime(device.expires)}"}}'
        )
        self._emit(ev.SessionLoginStarted, t, user.user_id, device.trace, payload)
        if not self._can_watch(user, t) or rng.random() < self.b.browse_only_share:
            end = t + self._between(MINUTE_MS, 15 * MINUTE_MS)
            if rng.random() < self.b.rate_when_browsing and self.sampler.live:
                # Rating from the title page, without watching (seen elsewhere).
                self._at(t + self._between(20_000, 50_000), self._on_rate, (user, self._pick(user)))
            self._finish_session(end, device)
        else:
            self._at(t + self._between(20_000, 240_000), self._on_watch, device)

    def _finish_session(self, t: int, device: _Device) -> None:
        """Schedule the end of the device's session: a logout soon, or expiry at expires_at."""
        if self.rng.random() < self.b.logout_share:
            self._at(
                t + self._between(5000, 120_000),
                self._on_session_end,
                (device, device.session, "logout"),
            )
        else:
            self._at(
                max(t + 1000, device.expires),
                self._on_session_end,
                (device, device.session, "expired"),
            )

    def _on_session_end(self, t: int, arg: tuple[_Device, str | None, str]) -> None:
        device, session_id, reason = arg
        if device.session is None or device.session != session_id:
            return
        user = device.user
        device.session = None
        payload = f'{{"session_id":"{session_id}","user_id":"{user.user_id}","reason":"{reason}"}}'
        self._emit(ev.SessionEnded, t, user.user_id, device.trace, payload)
        if not user.erasing:
            self._at(t + self._next_login_gap(user), self._on_login, device)

    def _touch_session(self, t: int, device: _Device) -> None:
        """Sliding expiry: an active session is refreshed every ``refresh_every_s``."""
        if t - device.last_refresh >= self.refresh_ms:
            device.last_refresh = t
            self._at(t + self._between(100, 900), self._on_refresh, (device, device.session))

    def _on_refresh(self, t: int, arg: tuple[_Device, str | None]) -> None:
        device, session_id = arg
        if device.session is None or device.session != session_id:
            return
        if device.kind == "mobile" and self.rng.random() < 0.3:
            device.ip = _ipv4(self.rng)
        device.expires = t + self.ttl_ms
        payload = (
            f'{{"session_id":"{session_id}","user_id":"{device.user.user_id}",'
            f'"ip_address":"{device.ip}","expires_at":"{self._ptime(device.expires)}"}}'
        )
        self._emit(ev.SessionRefreshed, t, device.user.user_id, device.trace, payload)

    # -- playback --------------------------------------------------------------------------

    def _affinity(self, user: _User, title: SimTitle) -> float:
        genres = title.payload["genres"]
        taste = user.taste
        return sum(taste.get(genre, 1.0) for genre in genres) / len(genres)

    def _pick(self, user: _User) -> SimTitle:
        """Popularity proposes (Zipf), taste disposes: the best-liked of three candidates."""
        rng = self.rng
        pick = self.sampler.pick
        candidates = [pick(rng), pick(rng), pick(rng)]
        weights = [self._affinity(user, title) ** 2 for title in candidates]
        return rng.choices(candidates, weights)[0]

    def _on_watch(self, t: int, device: _Device) -> None:
        user = device.user
        if device.session is None or user.erasing:
            return
        if not self._can_watch(user, t) or not self.sampler.live:
            self._finish_session(t, device)
            return
        rng = self.rng
        self._touch_session(t, device)
        sub = user.sub
        assert sub is not None  # _can_watch
        if user.streams >= PLANS[PlanCode(sub.plan)].max_streams:
            if rng.random() >= self.b.over_limit_attempt_share:
                # The app says "too many screens": try again later, or give up for now.
                if rng.random() < 0.5:
                    self._at(
                        t + self._between(10 * MINUTE_MS, 30 * MINUTE_MS), self._on_watch, device
                    )
                else:
                    self._finish_session(t, device)
                return
            viewing = self._open_viewing(t, device, self._pick(user), counted=False)
            viewing.stop_pos = viewing.start_pos
            viewing.reason = "stream_limit"
            self._at(t + self._between(500, 3000), self._on_stop, viewing)
            return
        title: SimTitle | None = None
        if user.progress and rng.random() < 0.5:
            title = self.by_id.get(next(reversed(user.progress)))
            if title is not None and title.removed:
                del user.progress[title.title_id]
                title = None
        if title is None:
            title = self._pick(user)
        self._start(t, device, title)

    def _on_watch_next(self, t: int, arg: tuple[_Device, SimTitle]) -> None:
        device, title = arg
        user = device.user
        if device.session is None or user.erasing or title.removed or not self._can_watch(user, t):
            if device.session is not None:
                self._finish_session(t, device)
            return
        sub = user.sub
        assert sub is not None
        if user.streams >= PLANS[PlanCode(sub.plan)].max_streams:
            self._finish_session(t, device)
            return
        self._touch_session(t, device)
        self._start(t, device, title)

    def _open_viewing(self, t: int, device: _Device, title: SimTitle, *, counted: bool) -> _Viewing:
        user = device.user
        item, pos = user.progress.get(title.title_id, (0, 0))
        if item >= len(title.items):
            item, pos = 0, 0
        episode_id, duration = title.items[item]
        if pos >= duration:
            pos = 0
        viewing = _Viewing(device, title, item, pos)
        viewing.counted = counted
        viewing.trace = self._trace()
        episode = "null" if episode_id is None else f'"{episode_id}"'
        viewing.head = (
            f'{{"viewing_session_id":"{self._id(t)}","user_id":"{user.user_id}",'
            f'"title_id":"{title.title_id}","episode_id":{episode},"position_seconds":'
        )
        viewing.tail = f',"duration_seconds":{duration},"device":{device.json}'
        self._emit(
            ev.PlaybackStarted, t, user.user_id, viewing.trace,
            f"{viewing.head}{pos}{viewing.tail}}}",
        )  # fmt: skip
        title.watching += 1  # over-limit attempts too: a title is never removed mid-stream
        if counted:
            user.streams += 1
        return viewing

    def _start(self, t: int, device: _Device, title: SimTitle) -> None:
        rng = self.rng
        b = self.b
        viewing = self._open_viewing(t, device, title, counted=True)
        duration = title.items[viewing.item][1]
        remaining = duration - viewing.start_pos
        if rng.random() < b.complete_share:
            viewing.stop_pos = duration
            viewing.reason = "completed"
        else:
            watched = max(60, int(remaining * rng.betavariate(1.3, 2.2)))
            viewing.stop_pos = min(duration, viewing.start_pos + watched)
            roll = rng.random()
            viewing.reason = (
                "completed" if viewing.stop_pos == duration
                else "error" if roll < 0.015 else "idle_timeout" if roll < 0.05 else "user"
            )  # fmt: skip
        self._schedule_next_beat(t, viewing)

    def _schedule_next_beat(self, t: int, viewing: _Viewing) -> None:
        hb = self.b.heartbeat_s
        if viewing.pos + hb < viewing.stop_pos:
            self._at(t + self.hb_ms, self._on_beat, viewing)
        else:
            self._at(t + (viewing.stop_pos - viewing.pos) * 1000, self._on_stop, viewing)

    def _on_beat(self, t: int, viewing: _Viewing) -> None:
        # The hot path: most events are heartbeats. Keep it to one f-string and one push.
        viewing.pos += self.b.heartbeat_s
        device = viewing.device
        self._emit(
            ev.PlaybackProgress, t, device.user.user_id, viewing.trace,
            f"{viewing.head}{viewing.pos}{viewing.tail}}}",
        )  # fmt: skip
        if t - device.last_refresh >= self.refresh_ms:
            self._touch_session(t, device)
        self._schedule_next_beat(t, viewing)

    def _on_stop(self, t: int, viewing: _Viewing) -> None:
        rng = self.rng
        b = self.b
        device = viewing.device
        user = device.user
        title = viewing.title
        viewing.pos = viewing.stop_pos
        self._emit(
            ev.PlaybackStopped, t, user.user_id, viewing.trace,
            f'{viewing.head}{viewing.pos}{viewing.tail},"reason":"{viewing.reason}"}}',
        )  # fmt: skip
        title.watching -= 1
        if not viewing.counted:
            if device.session is not None:
                self._finish_session(t, device)
            return
        user.streams -= 1
        duration = title.items[viewing.item][1]
        completed = viewing.reason == "completed"
        progress = user.progress
        progress.pop(title.title_id, None)
        next_item = viewing.item + 1 if completed else viewing.item
        if next_item < len(title.items):
            progress[title.title_id] = (next_item, 0 if completed else viewing.pos)
            if len(progress) > 20:
                del progress[next(iter(progress))]
        delay = 0
        watched = viewing.pos - viewing.start_pos
        chance = b.rate_after_complete if completed else (
            b.rate_after_partial if watched * 5 >= duration else 0.0
        )  # fmt: skip
        if title.is_series:
            chance /= 3  # people rate a series once in a while, not every episode
        if chance and rng.random() < chance:
            delay = self._between(5000, 90_000)
            self._at(t + delay, self._on_rate, (user, title))
        if device.session is None or user.erasing:
            return
        if viewing.reason == "error" and rng.random() < 0.6:
            self._at(t + delay + self._between(5000, 30_000), self._on_watch_next, (device, title))
        elif (
            completed
            and title.is_series
            and next_item < len(title.items)
            and rng.random() < b.autoplay_next_share
        ):
            self._at(t + delay + self._between(8000, 15_000), self._on_watch_next, (device, title))
        elif rng.random() < b.another_viewing_share:
            self._at(t + delay + self._between(30_000, 900_000), self._on_watch, device)
        else:
            self._finish_session(t + delay, device)

    # -- ratings ---------------------------------------------------------------------------

    def _on_rate(self, t: int, arg: tuple[_User, SimTitle]) -> None:
        user, title = arg
        if user.erasing or title.removed:
            return
        rng = self.rng
        score = title.quality + 0.9 * (self._affinity(user, title) - 1.0) + rng.gauss(0.0, 0.9)
        stars = min(5, max(1, round(score)))
        review = "null"
        if rng.random() < self.b.review_share:
            review = f'"{rng.choice(vocab.REVIEWS[stars])}"'
        user.ratings[title.title_id] = stars
        payload = (
            f'{{"user_id":"{user.user_id}","title_id":"{title.title_id}","stars":{stars},'
            f'"review":{review}}}'
        )
        self._emit(ev.RatingSubmitted, t, user.user_id, self._trace(), payload)
        if rng.random() < self.b.retract_share:
            self._at(t + self._between(HOUR_MS, 30 * DAY_MS), self._on_retract, (user, title))

    def _on_retract(self, t: int, arg: tuple[_User, SimTitle]) -> None:
        user, title = arg
        if user.erasing or title.title_id not in user.ratings:
            return
        del user.ratings[title.title_id]
        payload = f'{{"user_id":"{user.user_id}","title_id":"{title.title_id}"}}'
        self._emit(ev.RatingRetracted, t, user.user_id, self._trace(), payload)


def _ipv4(rng: Random) -> str:
    # Documentation ranges (RFC 5737): realistic shape, never a real person's address.
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"


def _pick_country(rng: Random) -> tuple[str, tuple[str, ...]]:
    return _COUNTRIES.pick(rng)


def _json_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ",".join(f'"{item}"' for item in items) + "]"


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def generate(config: SimConfig, limit: int | None = None) -> Iterator[SimEvent]:
    """The simulated event stream of ``config``: endless unless ``limit`` (or catalog_only).

    Each item is a :class:`SimEvent` (type, topic, key, encoded value), in the order the
    events happened. ``generate(c, n)`` is always a prefix of ``generate(c, m)`` for n < m.
    """
    events = Simulation(config).events()
    return events if limit is None else islice(events, limit)


def generate_envelopes(config: SimConfig, limit: int | None = None) -> Iterator[AnyEvent]:
    """:func:`generate`, decoded with full validation (slower; for tests and tools)."""
    for event in generate(config, limit):
        yield decode(event.value)
