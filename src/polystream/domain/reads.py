"""What the read side returns, and the reader port the API and `verify` use.

The account stores (in memory and PostgreSQL) and the live store (Redis) produce these
records; the API only ever sees them through these types, so it never imports a sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol
from uuid import UUID

from polystream.domain.events import PlanCode


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    CANCELED = "canceled"


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"


# --- records: what the read side returns ------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """A profile. After erasure every personal field is ``None`` and ``erased_at`` is set:
    the row stays so subscriptions, payments and ratings keep a valid owner."""

    user_id: str
    email: str | None
    display_name: str | None
    country: str | None
    birth_year: int | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs, and nothing else (the hash is never part of :class:`User`)."""

    user_id: str
    password_hash: str
    #: ``user`` or ``operator``: not an event-sourced field, granted by an operator's command.
    role: str = "user"


ROLES: Final = ("user", "operator")


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    user_id: str
    plan: PlanCode
    status: SubscriptionStatus
    period_start: datetime
    period_end: datetime
    started_at: datetime
    updated_at: datetime
    canceled_at: datetime | None = None
    ends_at: datetime | None = None
    cancel_reason: str | None = None
    last_payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment as support sees it: brand and last four digits, never the card or token."""

    payment_id: str
    subscription_id: str
    user_id: str
    amount_cents: int
    currency: str
    card_brand: str
    card_last4: str
    status: PaymentStatus
    failure_reason: str | None
    occurred_at: datetime
    updated_at: datetime
    refund_id: str | None = None
    refund_reason: str | None = None
    refunded_cents: int | None = None
    refunded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Preferences:
    user_id: str
    genres: tuple[str, ...]
    languages: tuple[str, ...]
    subtitles: bool
    subtitle_language: str | None
    autoplay_next_episode: bool
    autoplay_previews: bool
    maturity_limit: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Rating:
    user_id: str
    title_id: str
    stars: int
    review: str | None
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class RatingStats:
    """Current (not retracted) ratings of one title; a ranking divides ``total`` by
    ``count`` itself, so stats of many titles or shards can be summed."""

    count: int = 0
    total: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(frozen=True, slots=True)
class ProcessedEvent:
    """A ledger row: this consumer applied (or refused) this event, with that outcome."""

    event_id: UUID
    event_type: str
    status: str
    reason: str | None


class AccountReader(Protocol):
    """The read side of an account store, used by the API (login, profile, billing pages)
    and by ``verify``. Both stores implement it with the same results."""

    def get_user(self, user_id: str) -> User | None: ...

    def get_user_by_email(self, email: str) -> Credentials | None:
        """Login lookup; ``None`` for unknown or erased accounts. The email is lower-cased."""
        ...

    def get_subscription(self, subscription_id: str) -> Subscription | None: ...

    def get_subscriptions(self, user_id: str) -> list[Subscription]:
        """Every subscription of the user, oldest first."""
        ...

    def get_active_subscription(self, user_id: str) -> Subscription | None: ...

    def list_payments(self, user_id: str) -> list[Payment]:
        """Oldest first."""
        ...

    def get_preferences(self, user_id: str) -> Preferences | None: ...

    def list_ratings(self, user_id: str) -> list[Rating]:
        """Current ratings of the user (not retracted ones), by title id."""
        ...

    def get_rating_stats(self, title_id: str) -> RatingStats: ...

    def list_rating_stats(self) -> dict[str, RatingStats]:
        """Stats of every title that has at least one current rating."""
        ...

    def get_processed_event(self, event_id: UUID) -> ProcessedEvent | None: ...

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in a canonical order and shape that is the same for
        both stores (ledger times excluded: they are wall-clock times)."""
        ...


# --- the live store's records ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewingSession:
    viewing_session_id: str
    user_id: str
    title_id: str
    episode_id: str | None
    position_seconds: int
    duration_seconds: int
    device_kind: str
    device_id: str
    state: str  #: "playing" or "stopped"
    stop_reason: str | None
    started_at: datetime
    last_event_at: datetime


@dataclass(frozen=True, slots=True)
class ContinueItem:
    title_id: str
    episode_id: str | None
    position_seconds: int
    duration_seconds: int
    viewing_session_id: str
    updated_at: datetime
