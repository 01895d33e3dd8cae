"""The rows of the accounts family in memory, and their canonical dump.

:class:`AccountRows` is what the rules of :mod:`~polystream.domain.accounts_rules` read and
change: rows, the indexes the rules look up, and the keys each applied event changed (so the
PostgreSQL store can write back only those). ``load_*`` puts a row as it is stored; ``put_*``
changes a row and marks it dirty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from polystream.domain import reads
from polystream.domain.accounts import CONSUMER
from polystream.domain.reads import SubscriptionStatus


class AccountRows:
    """Rows, the indexes the rules need, and the keys each applied event changed.

    For PostgreSQL this holds only the rows a batch can touch; everything the rules look up
    (a user by id or by email, a subscription, a user's active subscription, a payment, a
    preference set, a rating) must have been loaded for every key the batch mentions, so
    "absent here" means "absent in the database".
    """

    def __init__(self) -> None:
        self.users: dict[str, reads.User] = {}
        self.password_hashes: dict[str, str | None] = {}
        self.user_by_email: dict[str, str] = {}
        self.subscriptions: dict[str, reads.Subscription] = {}
        self.active_subscription: dict[str, str] = {}
        self.payments: dict[str, reads.Payment] = {}
        self.card_tokens: dict[str, str | None] = {}
        self.preferences: dict[str, reads.Preferences] = {}
        self.ratings: dict[tuple[str, str], reads.Rating] = {}
        # A retraction leaves a tombstone with its event time, so that a rating submitted
        # before it but delivered after it (a replay, a late retry) cannot bring it back.
        self.retractions: dict[tuple[str, str], datetime] = {}
        self.processed: dict[UUID, reads.ProcessedEvent] = {}
        # Per-user indexes, for erasure (which reaches every row of the user).
        self.user_payments: dict[str, set[str]] = {}
        self.user_ratings: dict[str, set[str]] = {}
        self.user_subscriptions: dict[str, set[str]] = {}
        # Keys changed since the last flush, in first-change order (dicts as ordered sets).
        self.dirty_users: dict[str, None] = {}
        self.dirty_subscriptions: dict[str, None] = {}
        self.dirty_payments: dict[str, None] = {}
        self.dirty_preferences: dict[str, None] = {}
        self.dirty_ratings: dict[tuple[str, str], None] = {}
        self.erased_users: dict[str, None] = {}
        self.new_processed: list[reads.ProcessedEvent] = []

    # -- loading (PostgreSQL) and writing rows ------------------------------------------

    def load_user(self, user: reads.User, password_hash: str | None) -> None:
        self.users[user.user_id] = user
        self.password_hashes[user.user_id] = password_hash
        if user.email is not None:
            self.user_by_email[user.email] = user.user_id

    def load_subscription(self, subscription: reads.Subscription) -> None:
        self.subscriptions[subscription.subscription_id] = subscription
        self.user_subscriptions.setdefault(subscription.user_id, set()).add(
            subscription.subscription_id
        )
        if subscription.status is SubscriptionStatus.ACTIVE:
            self.active_subscription[subscription.user_id] = subscription.subscription_id

    def load_payment(self, payment: reads.Payment, card_token: str | None) -> None:
        self.payments[payment.payment_id] = payment
        self.card_tokens[payment.payment_id] = card_token
        self.user_payments.setdefault(payment.user_id, set()).add(payment.payment_id)

    def load_preferences(self, preferences: reads.Preferences) -> None:
        self.preferences[preferences.user_id] = preferences

    def load_rating(self, rating: reads.Rating) -> None:
        self.ratings[rating.user_id, rating.title_id] = rating
        self.user_ratings.setdefault(rating.user_id, set()).add(rating.title_id)

    def load_retraction(self, user_id: str, title_id: str, retracted_at: datetime) -> None:
        self.retractions[user_id, title_id] = retracted_at
        self.user_ratings.setdefault(user_id, set()).add(title_id)

    def load_processed(self, event_id: UUID) -> None:
        # Only presence matters for a batch: an event already in the ledger is a duplicate.
        self.processed[event_id] = reads.ProcessedEvent(event_id, "", "", None)

    def clear_dirty(self) -> None:
        self.dirty_users.clear()
        self.dirty_subscriptions.clear()
        self.dirty_payments.clear()
        self.dirty_preferences.clear()
        self.dirty_ratings.clear()
        self.erased_users.clear()
        self.new_processed.clear()

    def put_user(self, user: reads.User, password_hash: str | None) -> None:
        old = self.users.get(user.user_id)
        if old is not None and old.email is not None and old.email != user.email:
            del self.user_by_email[old.email]
        self.load_user(user, password_hash)
        self.dirty_users[user.user_id] = None

    def put_subscription(self, subscription: reads.Subscription) -> None:
        if subscription.status is SubscriptionStatus.CANCELED and (
            self.active_subscription.get(subscription.user_id) == subscription.subscription_id
        ):
            del self.active_subscription[subscription.user_id]
        self.load_subscription(subscription)
        self.dirty_subscriptions[subscription.subscription_id] = None

    def put_payment(self, payment: reads.Payment, card_token: str | None) -> None:
        self.load_payment(payment, card_token)
        self.dirty_payments[payment.payment_id] = None

    def put_rating(self, rating: reads.Rating) -> None:
        key = (rating.user_id, rating.title_id)
        self.retractions.pop(key, None)
        self.load_rating(rating)
        self.dirty_ratings[key] = None

    def put_retraction(self, user_id: str, title_id: str, at: datetime) -> None:
        self.ratings.pop((user_id, title_id), None)
        self.load_retraction(user_id, title_id, at)
        self.dirty_ratings[user_id, title_id] = None

    def put_preferences(self, preferences: reads.Preferences) -> None:
        self.load_preferences(preferences)
        self.dirty_preferences[preferences.user_id] = None

    def drop_preferences(self, user_id: str) -> None:
        if self.preferences.pop(user_id, None) is not None:
            self.dirty_preferences[user_id] = None

    # -- reads (the in-memory store's; PostgreSQL answers them in SQL, in the same order) --

    def subscriptions_of(self, user_id: str) -> list[reads.Subscription]:
        found = [self.subscriptions[s] for s in self.user_subscriptions.get(user_id, ())]
        return sorted(found, key=lambda s: (s.started_at, s.subscription_id))

    def active_subscription_of(self, user_id: str) -> reads.Subscription | None:
        subscription_id = self.active_subscription.get(user_id)
        return None if subscription_id is None else self.subscriptions[subscription_id]

    def payments_of(self, user_id: str) -> list[reads.Payment]:
        found = [self.payments[p] for p in self.user_payments.get(user_id, ())]
        return sorted(found, key=lambda p: (p.occurred_at, p.payment_id))

    def ratings_of(self, user_id: str) -> list[reads.Rating]:
        titles = sorted(self.user_ratings.get(user_id, ()))
        return [rating for t in titles if (rating := self.ratings.get((user_id, t))) is not None]

    def rating_stats(self) -> dict[str, reads.RatingStats]:
        counts: dict[str, list[int]] = {}
        for rating in self.ratings.values():
            entry = counts.setdefault(rating.title_id, [0, 0])
            entry[0] += 1
            entry[1] += rating.stars
        return {title_id: reads.RatingStats(n, total) for title_id, (n, total) in counts.items()}

    # -- dump (both stores produce exactly this shape) -----------------------------------

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        users = [
            {**_plain(user), "password_hash": self.password_hashes[user.user_id]}
            for user in self.users.values()
        ]
        payments = [
            {**_plain(payment), "card_token": self.card_tokens[payment.payment_id]}
            for payment in self.payments.values()
        ]
        ratings = [
            {
                "user_id": r.user_id,
                "title_id": r.title_id,
                "stars": r.stars,
                "review": r.review,
                "updated_at": r.rated_at,
                "retracted_at": None,
            }
            for r in self.ratings.values()
        ] + [
            {
                "user_id": user_id,
                "title_id": title_id,
                "stars": None,
                "review": None,
                "updated_at": at,
                "retracted_at": at,
            }
            for (user_id, title_id), at in self.retractions.items()
        ]
        ledger = [
            {
                "consumer": CONSUMER,
                "event_id": entry.event_id,
                "event_type": entry.event_type,
                "status": entry.status,
                "reason": entry.reason,
            }
            for entry in self.processed.values()
        ]
        return canonical_dump(
            {
                "users": users,
                "subscriptions": [_plain(s) for s in self.subscriptions.values()],
                "payments": payments,
                "preferences": [_plain(p) for p in self.preferences.values()],
                "ratings": ratings,
                "processed_events": ledger,
            }
        )


#: Primary key columns of each dumped table, the order of :func:`canonical_dump`.
DUMP_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "users": ("user_id",),
    "subscriptions": ("subscription_id",),
    "payments": ("payment_id",),
    "preferences": ("user_id",),
    "ratings": ("user_id", "title_id"),
    "processed_events": ("consumer", "event_id"),
}


def _plain(record: Any) -> dict[str, Any]:
    return {
        name: (value.value if isinstance(value, StrEnum) else value)
        for name, value in asdict(record).items()
    }


def canonical_dump(
    tables: Mapping[str, Iterable[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """Rows sorted by primary key, columns sorted by name, sequences as lists."""
    result: dict[str, list[dict[str, Any]]] = {}
    for table, keys in DUMP_KEYS.items():
        rows = [
            {
                name: list(value) if isinstance(value, (list, tuple)) else value
                for name, value in sorted(row.items())
            }
            for row in tables.get(table, ())
        ]
        rows.sort(key=lambda row: tuple(str(row[key]) for key in keys))
        result[table] = rows
    return result


__all__ = ["DUMP_KEYS", "AccountRows", "canonical_dump"]
