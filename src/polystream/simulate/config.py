"""What to simulate: the population's behaviour, the run's configuration, the shared hash.

Equal configurations give byte-identical streams (see ``engine``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from polystream.simulate.catalog import CatalogEntry

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
    #: An imported catalogue (``catalog_import.load_catalog``) replacing the synthetic one.
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
