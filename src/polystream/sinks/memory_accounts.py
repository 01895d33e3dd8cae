"""Accounts in memory, and the rules every account store applies.

The PostgreSQL sink owns users, subscriptions, payments, preferences and ratings. What an event
does to them (who may register which email, when a subscription change is stale, what a refund
needs, which event must wait for another) is decided here, once, by :class:`AccountState`:

* :class:`InMemoryAccountStore` keeps one complete ``AccountState`` in dicts;
* ``PostgresAccountStore`` loads into a fresh ``AccountState`` only the rows a batch touches
  (locked ``FOR UPDATE``), runs the same rules over the batch in order, and writes back the
  rows the state marked dirty, set-based.

So the two stores cannot drift apart in their semantics, and the contract tests check the
same thing twice: the rules, and the storage of their results.

Times stored on rows (``created_at``, ``updated_at``, ...) are event times (``occurred_at``),
never wall-clock times: they are the guards that keep an older event from overwriting newer
state, and replaying the log must rebuild exactly the same rows.

Deferral. The sink reads three topics, and Kafka orders events per partition, not across
topics: a ``subscription.started`` or a ``rating.submitted`` may arrive before the
``user.registered`` of its user. With ``allow_defer`` such an event gets a
:func:`~polystream.sinks.ports.missing_prerequisite` outcome and leaves no trace (no ledger
row, no row change), so the worker can offer it again. What can be missing:

* the user (``unknown user``) of a subscription, rating or payment-topic event: the user
  comes from ``polystream.users``. An *erased* user is no such case: "user erased" is final.
  Events of the users topic itself (profile, preferences, erasure) are never deferred: their
  registration is on the same partition, so it can only be missing for good;
* the subscription (``unknown subscription``) of a change, renewal, cancellation or payment,
  and the payment (``unknown payment``) of a refund: on the same partition as the event, but
  their own ``subscription.started`` may have been deferred (waiting for the user);
* an earlier event of the same stream (``waiting for an earlier event of this user``): once
  an event of user U is deferred, every later event of U *from the same topic* in the batch is
  deferred too, so a partition's per-user order holds (a payment never overtakes its
  subscription, a retraction never overtakes its rating). Events of U from other topics go
  on: holding back the very ``user.registered`` a subscription waits for would never end.

Without ``allow_defer`` (the worker's last attempt, after its deadline) the same rejections
are final and recorded in the ledger, exactly like any other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, assert_never
from uuid import UUID

from polystream.domain import events as ev
from polystream.domain.events import EVENT_TYPES, AnyEvent, Sink, event_types_for
from polystream.domain.reads import (
    ROLES,
    AccountReader,
    Credentials,
    Payment,
    PaymentStatus,
    Preferences,
    ProcessedEvent,
    Rating,
    RatingStats,
    Subscription,
    SubscriptionStatus,
    User,
)
from polystream.sinks.ports import (
    DUPLICATE,
    STALE,
    STORED,
    Outcome,
    missing_prerequisite,
    rejected,
)
from polystream.store_errors import PermanentStoreError

#: The consumer name in the processed-events ledger.
CONSUMER: Final = Sink.POSTGRES.value

#: The event types an account store applies (the PostgreSQL sink's share of the registry).
ACCOUNT_EVENT_TYPES: Final = frozenset(event_types_for(Sink.POSTGRES))

#: The payloads of those event types (a test checks the two agree).
AccountPayload = (
    ev.UserRegistered
    | ev.UserProfileUpdated
    | ev.UserErased
    | ev.PreferencesUpdated
    | ev.SubscriptionStarted
    | ev.SubscriptionPlanChanged
    | ev.SubscriptionRenewed
    | ev.SubscriptionCanceled
    | ev.PaymentSucceeded
    | ev.PaymentFailed
    | ev.PaymentRefunded
    | ev.RatingSubmitted
    | ev.RatingRetracted
)


class Reason(StrEnum):
    """Why an event was rejected or found stale. Stable strings: receipts and the API's
    ``409`` answers carry them, and they never contain field values."""

    USER_EXISTS = "user already registered"
    EMAIL_TAKEN = "email already registered"
    UNKNOWN_USER = "unknown user"
    USER_ERASED = "user erased"
    ALREADY_ERASED = "user already erased"
    SUBSCRIPTION_EXISTS = "subscription already exists"
    ALREADY_SUBSCRIBED = "user already has an active subscription"
    UNKNOWN_SUBSCRIPTION = "unknown subscription"
    NOT_SUBSCRIPTION_OWNER = "subscription belongs to another user"
    SUBSCRIPTION_CANCELED = "subscription is canceled"
    ALREADY_CANCELED = "subscription already canceled"
    PLAN_MISMATCH = "from_plan is not the subscription's current plan"
    PAYMENT_EXISTS = "payment already recorded"
    UNKNOWN_PAYMENT = "unknown payment"
    REFUND_MISMATCH = "refund does not match the payment's subscription or user"
    PAYMENT_NOT_SUCCEEDED = "only a succeeded payment can be refunded"
    ALREADY_REFUNDED = "payment already refunded"
    REFUND_CURRENCY = "refund currency differs from the payment's"
    REFUND_TOO_LARGE = "refund exceeds the payment"
    NEWER_STATE = "a newer event was already applied"
    #: Deferred behind an earlier deferred event of the same user and topic (retryable).
    WAITING = "waiting for an earlier event of this user"


#: The outcome reasons that may come back retryable (``missing_prerequisite``) when deferral
#: is allowed; every other reason is always final.
DEFERRABLE_REASONS: Final = frozenset(
    {Reason.UNKNOWN_USER, Reason.UNKNOWN_SUBSCRIPTION, Reason.UNKNOWN_PAYMENT, Reason.WAITING}
)

#: A stream whose order deferral must keep: (user id, topic).
Stream = tuple[str, str]


def account_payload(event: AnyEvent) -> AccountPayload:
    """The payload of an account event; :class:`PermanentStoreError` for any other event."""
    payload = event.payload
    if not isinstance(payload, AccountPayload):
        raise PermanentStoreError(event.event_id, f"{event.type} is not an account event")
    return payload


def stream_of(event: AnyEvent) -> Stream:
    """The per-user, per-topic stream of an account event (every one carries a user id)."""
    return account_payload(event).user_id, EVENT_TYPES[event.type].family.value


# --- the rules ------------------------------------------------------------------------


def _free_text(payload: AccountPayload) -> dict[str, str | None]:
    """The free-text fields this sink stores (ids, codes and hashes are patterns)."""
    match payload:
        case ev.UserRegistered() | ev.UserProfileUpdated():
            return {"display_name": payload.display_name}
        case ev.RatingSubmitted():
            return {"review": payload.review}
        case _:
            return {}


def check_batch(events: Sequence[AnyEvent]) -> None:
    """Refuse, before anything is applied, an event no account store can ever apply.

    Runs first so a batch is applied whole or not at all: the worker dead-letters the
    named event and redelivers the others, which must then still be new.
    """
    for event in events:
        payload = account_payload(event)
        # PostgreSQL text cannot hold NUL, and the contract's free-text types allow control
        # characters. Both stores refuse it, so that they agree.
        for field, text in _free_text(payload).items():
            if text is not None and "\x00" in text:
                raise PermanentStoreError(event.event_id, f"{field} contains a NUL character")


class AccountState:
    """Rows, the indexes the rules need, and the keys each applied event changed.

    For PostgreSQL this holds only the rows a batch can touch; everything the rules look up
    (a user by id or by email, a subscription, a user's active subscription, a payment, a
    preference set, a rating) must have been loaded for every key the batch mentions, so
    "absent here" means "absent in the database".
    """

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.password_hashes: dict[str, str | None] = {}
        self.user_by_email: dict[str, str] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.active_subscription: dict[str, str] = {}
        self.payments: dict[str, Payment] = {}
        self.card_tokens: dict[str, str | None] = {}
        self.preferences: dict[str, Preferences] = {}
        self.ratings: dict[tuple[str, str], Rating] = {}
        # A retraction leaves a tombstone with its event time, so that a rating submitted
        # before it but delivered after it (a replay, a late retry) cannot bring it back.
        self.retractions: dict[tuple[str, str], datetime] = {}
        self.processed: dict[UUID, ProcessedEvent] = {}
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
        self.new_processed: list[ProcessedEvent] = []

    # -- loading (PostgreSQL) and writing rows ------------------------------------------

    def load_user(self, user: User, password_hash: str | None) -> None:
        self.users[user.user_id] = user
        self.password_hashes[user.user_id] = password_hash
        if user.email is not None:
            self.user_by_email[user.email] = user.user_id

    def load_subscription(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.subscription_id] = subscription
        self.user_subscriptions.setdefault(subscription.user_id, set()).add(
            subscription.subscription_id
        )
        if subscription.status is SubscriptionStatus.ACTIVE:
            self.active_subscription[subscription.user_id] = subscription.subscription_id

    def load_payment(self, payment: Payment, card_token: str | None) -> None:
        self.payments[payment.payment_id] = payment
        self.card_tokens[payment.payment_id] = card_token
        self.user_payments.setdefault(payment.user_id, set()).add(payment.payment_id)

    def load_preferences(self, preferences: Preferences) -> None:
        self.preferences[preferences.user_id] = preferences

    def load_rating(self, rating: Rating) -> None:
        self.ratings[rating.user_id, rating.title_id] = rating
        self.user_ratings.setdefault(rating.user_id, set()).add(rating.title_id)

    def load_retraction(self, user_id: str, title_id: str, retracted_at: datetime) -> None:
        self.retractions[user_id, title_id] = retracted_at
        self.user_ratings.setdefault(user_id, set()).add(title_id)

    def load_processed(self, event_id: UUID) -> None:
        # Only presence matters for a batch: an event already in the ledger is a duplicate.
        self.processed[event_id] = ProcessedEvent(event_id, "", "", None)

    def clear_dirty(self) -> None:
        self.dirty_users.clear()
        self.dirty_subscriptions.clear()
        self.dirty_payments.clear()
        self.dirty_preferences.clear()
        self.dirty_ratings.clear()
        self.erased_users.clear()
        self.new_processed.clear()

    def _put_user(self, user: User, password_hash: str | None) -> None:
        old = self.users.get(user.user_id)
        if old is not None and old.email is not None and old.email != user.email:
            del self.user_by_email[old.email]
        self.load_user(user, password_hash)
        self.dirty_users[user.user_id] = None

    def _put_subscription(self, subscription: Subscription) -> None:
        if subscription.status is SubscriptionStatus.CANCELED and (
            self.active_subscription.get(subscription.user_id) == subscription.subscription_id
        ):
            del self.active_subscription[subscription.user_id]
        self.load_subscription(subscription)
        self.dirty_subscriptions[subscription.subscription_id] = None

    def _put_payment(self, payment: Payment, card_token: str | None) -> None:
        self.load_payment(payment, card_token)
        self.dirty_payments[payment.payment_id] = None

    def _put_rating(self, rating: Rating) -> None:
        key = (rating.user_id, rating.title_id)
        self.retractions.pop(key, None)
        self.load_rating(rating)
        self.dirty_ratings[key] = None

    # -- applying events -------------------------------------------------------------

    def apply(self, event: AnyEvent, deferred: set[Stream] | None = None) -> Outcome:
        """Apply one event (already checked by :func:`check_batch`) and record it in the
        ledger, whatever the outcome: a refused event must stay refused on replay, even if
        a later event would now let it through.

        ``deferred`` allows deferral: it holds the streams (see :func:`stream_of`) with a
        deferred event earlier in the batch, and gains this event's stream if it is deferred
        too. A deferred event is neither applied nor recorded. ``None`` (no deferral): a
        missing prerequisite is a final rejection, recorded like any other.
        """
        if event.event_id in self.processed:
            return DUPLICATE
        if deferred is not None and stream_of(event) in deferred:
            return missing_prerequisite(Reason.WAITING)
        outcome = self._decide(account_payload(event), event.occurred_at)
        if outcome.retryable:
            # The handlers return before changing anything when a prerequisite is missing.
            if deferred is not None:
                deferred.add(stream_of(event))
                return outcome
            outcome = replace(outcome, retryable=False)
        entry = ProcessedEvent(event.event_id, event.type, outcome.status.value, outcome.reason)
        self.processed[event.event_id] = entry
        self.new_processed.append(entry)
        return outcome

    def _decide(self, p: AccountPayload, at: datetime) -> Outcome:
        """What the event with payload ``p``, which happened ``at``, does to the state."""
        match p:
            case ev.UserRegistered():
                return self._user_registered(p, at)
            case ev.UserProfileUpdated():
                return self._user_profile_updated(p, at)
            case ev.UserErased():
                return self._user_erased(p, at)
            case ev.PreferencesUpdated():
                return self._preferences_updated(p, at)
            case ev.SubscriptionStarted():
                return self._subscription_started(p, at)
            case ev.SubscriptionPlanChanged():
                return self._subscription_plan_changed(p, at)
            case ev.SubscriptionRenewed():
                return self._subscription_renewed(p, at)
            case ev.SubscriptionCanceled():
                return self._subscription_canceled(p, at)
            case ev.PaymentSucceeded() | ev.PaymentFailed():
                return self._payment_recorded(p, at)
            case ev.PaymentRefunded():
                return self._payment_refunded(p, at)
            case ev.RatingSubmitted():
                return self._rating_submitted(p, at)
            case ev.RatingRetracted():
                return self._rating_retracted(p, at)
            case _:
                assert_never(p)

    def _live_user(self, user_id: str, *, other_topic: bool = False) -> User | Outcome:
        """The user, not erased. ``other_topic``: the event comes from another topic than the
        user's registration, so an unknown user may simply not have been read yet."""
        user = self.users.get(user_id)
        if user is None:
            if other_topic:
                return missing_prerequisite(Reason.UNKNOWN_USER)
            return rejected(Reason.UNKNOWN_USER)
        if user.erased_at is not None:
            return rejected(Reason.USER_ERASED)
        return user

    def _user_registered(self, p: ev.UserRegistered, at: datetime) -> Outcome:
        if p.user_id in self.users:
            return rejected(Reason.USER_EXISTS)
        if p.email in self.user_by_email:
            return rejected(Reason.EMAIL_TAKEN)
        user = User(p.user_id, p.email, p.display_name, p.country, p.birth_year, at, at)
        self._put_user(user, p.password_hash)
        return STORED

    def _user_profile_updated(self, p: ev.UserProfileUpdated, at: datetime) -> Outcome:
        user = self._live_user(p.user_id)
        if isinstance(user, Outcome):
            return user
        if at < user.updated_at:
            return Outcome(STALE.status, Reason.NEWER_STATE)
        if p.email is not None and self.user_by_email.get(p.email, p.user_id) != p.user_id:
            return rejected(Reason.EMAIL_TAKEN)
        changed = replace(
            user,
            email=user.email if p.email is None else p.email,
            display_name=user.display_name if p.display_name is None else p.display_name,
            country=user.country if p.country is None else p.country,
            birth_year=user.birth_year if p.birth_year is None else p.birth_year,
            updated_at=at,
        )
        self._put_user(changed, self.password_hashes[p.user_id])
        return STORED

    def _user_erased(self, p: ev.UserErased, at: datetime) -> Outcome:
        user = self.users.get(p.user_id)
        if user is None:
            return rejected(Reason.UNKNOWN_USER)
        if user.erased_at is not None:
            return Outcome(STALE.status, Reason.ALREADY_ERASED)
        # Erasure wins whatever its event time: a profile edit that happened "later" must
        # not keep personal data alive.
        erased = User(
            p.user_id, None, None, None, None, user.created_at, max(at, user.updated_at), at
        )
        self._put_user(erased, None)
        self.erased_users[p.user_id] = None
        if self.preferences.pop(p.user_id, None) is not None:
            self.dirty_preferences[p.user_id] = None
        # Ratings stay (they are the titles' statistics, now under an anonymous id) but the
        # review text is the person's own words. Payments stay (accounting), but the card
        # token could still charge the person, so it goes.
        for title_id in tuple(self.user_ratings.get(p.user_id, ())):
            rating = self.ratings.get((p.user_id, title_id))
            if rating is not None and rating.review is not None:
                self._put_rating(replace(rating, review=None))
        for payment_id in tuple(self.user_payments.get(p.user_id, ())):
            if self.card_tokens.get(payment_id) is not None:
                self._put_payment(self.payments[payment_id], None)
        return STORED

    def _preferences_updated(self, p: ev.PreferencesUpdated, at: datetime) -> Outcome:
        user = self._live_user(p.user_id)
        if isinstance(user, Outcome):
            return user
        current = self.preferences.get(p.user_id)
        if current is not None and at < current.updated_at:
            return Outcome(STALE.status, Reason.NEWER_STATE)
        self.preferences[p.user_id] = Preferences(
            user_id=p.user_id,
            genres=tuple(genre.value for genre in p.genres),
            languages=tuple(p.languages),
            subtitles=p.subtitles,
            subtitle_language=p.subtitle_language,
            autoplay_next_episode=p.autoplay_next_episode,
            autoplay_previews=p.autoplay_previews,
            maturity_limit=p.maturity_limit.value,
            updated_at=at,
        )
        self.dirty_preferences[p.user_id] = None
        return STORED

    def _subscription_started(self, p: ev.SubscriptionStarted, at: datetime) -> Outcome:
        user = self._live_user(p.user_id, other_topic=True)
        if isinstance(user, Outcome):
            return user
        if p.subscription_id in self.subscriptions:
            return rejected(Reason.SUBSCRIPTION_EXISTS)
        if p.user_id in self.active_subscription:
            return rejected(Reason.ALREADY_SUBSCRIBED)
        self._put_subscription(
            Subscription(
                p.subscription_id,
                p.user_id,
                p.plan,
                SubscriptionStatus.ACTIVE,
                p.period_start,
                p.period_end,
                started_at=at,
                updated_at=at,
            )
        )
        return STORED

    def _changeable(
        self, at: datetime, subscription_id: str, user_id: str
    ) -> Subscription | Outcome:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            # Its subscription.started may be deferred, waiting for the user.
            return missing_prerequisite(Reason.UNKNOWN_SUBSCRIPTION)
        if subscription.user_id != user_id:
            return rejected(Reason.NOT_SUBSCRIPTION_OWNER)
        # Stale before canceled: a change that happened before the cancellation but arrived
        # after it is simply old news, not a change the user attempted on a dead subscription.
        if at < subscription.updated_at:
            return Outcome(STALE.status, Reason.NEWER_STATE)
        if subscription.status is SubscriptionStatus.CANCELED:
            return rejected(Reason.SUBSCRIPTION_CANCELED)
        return subscription

    def _subscription_plan_changed(self, p: ev.SubscriptionPlanChanged, at: datetime) -> Outcome:
        subscription = self._changeable(at, p.subscription_id, p.user_id)
        if isinstance(subscription, Outcome):
            return subscription
        if subscription.plan != p.from_plan:
            return rejected(Reason.PLAN_MISMATCH)
        self._put_subscription(replace(subscription, plan=p.to_plan, updated_at=at))
        return STORED

    def _subscription_renewed(self, p: ev.SubscriptionRenewed, at: datetime) -> Outcome:
        subscription = self._changeable(at, p.subscription_id, p.user_id)
        if isinstance(subscription, Outcome):
            return subscription
        renewed = replace(
            subscription,
            plan=p.plan,
            period_start=p.period_start,
            period_end=p.period_end,
            updated_at=at,
            last_payment_id=p.payment_id or subscription.last_payment_id,
        )
        self._put_subscription(renewed)
        return STORED

    def _subscription_canceled(self, p: ev.SubscriptionCanceled, at: datetime) -> Outcome:
        current = self.subscriptions.get(p.subscription_id)
        if (
            current is not None
            and current.status is SubscriptionStatus.CANCELED
            and current.user_id == p.user_id
        ):
            return Outcome(STALE.status, Reason.ALREADY_CANCELED)
        subscription = self._changeable(at, p.subscription_id, p.user_id)
        if isinstance(subscription, Outcome):
            return subscription
        canceled = replace(
            subscription,
            status=SubscriptionStatus.CANCELED,
            updated_at=at,
            canceled_at=at,
            ends_at=p.ends_at,
            cancel_reason=p.reason.value,
        )
        self._put_subscription(canceled)
        return STORED

    def _payment_recorded(self, p: ev.PaymentSucceeded | ev.PaymentFailed, at: datetime) -> Outcome:
        if p.payment_id in self.payments:
            return rejected(Reason.PAYMENT_EXISTS)
        subscription = self.subscriptions.get(p.subscription_id)
        if subscription is None:
            return missing_prerequisite(Reason.UNKNOWN_SUBSCRIPTION)
        if subscription.user_id != p.user_id:
            return rejected(Reason.NOT_SUBSCRIPTION_OWNER)
        if subscription.status is SubscriptionStatus.CANCELED:
            return rejected(Reason.SUBSCRIPTION_CANCELED)
        failed = isinstance(p, ev.PaymentFailed)
        payment = Payment(
            p.payment_id,
            p.subscription_id,
            p.user_id,
            p.amount_cents,
            p.currency,
            p.card_brand.value,
            p.card_last4,
            PaymentStatus.FAILED if failed else PaymentStatus.SUCCEEDED,
            p.failure_reason.value if isinstance(p, ev.PaymentFailed) else None,
            occurred_at=at,
            updated_at=at,
        )
        self._put_payment(payment, p.card_token)
        return STORED

    def _payment_refunded(self, p: ev.PaymentRefunded, at: datetime) -> Outcome:
        payment = self.payments.get(p.payment_id)
        if payment is None:
            return missing_prerequisite(Reason.UNKNOWN_PAYMENT)
        if payment.subscription_id != p.subscription_id or payment.user_id != p.user_id:
            return rejected(Reason.REFUND_MISMATCH)
        if payment.status is PaymentStatus.REFUNDED:
            return rejected(Reason.ALREADY_REFUNDED)
        if payment.status is not PaymentStatus.SUCCEEDED:
            return rejected(Reason.PAYMENT_NOT_SUCCEEDED)
        if p.currency != payment.currency:
            return rejected(Reason.REFUND_CURRENCY)
        if p.amount_cents > payment.amount_cents:
            return rejected(Reason.REFUND_TOO_LARGE)
        refunded = replace(
            payment,
            status=PaymentStatus.REFUNDED,
            updated_at=max(at, payment.updated_at),
            refund_id=p.refund_id,
            refund_reason=p.reason.value,
            refunded_cents=p.amount_cents,
            refunded_at=at,
        )
        self._put_payment(refunded, self.card_tokens[p.payment_id])
        return STORED

    def _rating_guard(self, key: tuple[str, str]) -> datetime | None:
        rating = self.ratings.get(key)
        return rating.rated_at if rating is not None else self.retractions.get(key)

    def _rating_submitted(self, p: ev.RatingSubmitted, at: datetime) -> Outcome:
        user = self._live_user(p.user_id, other_topic=True)
        if isinstance(user, Outcome):
            return user
        key = (p.user_id, p.title_id)
        guard = self._rating_guard(key)
        if guard is not None and at < guard:
            return Outcome(STALE.status, Reason.NEWER_STATE)
        self._put_rating(Rating(p.user_id, p.title_id, p.stars, p.review, at))
        return STORED

    def _rating_retracted(self, p: ev.RatingRetracted, at: datetime) -> Outcome:
        user = self._live_user(p.user_id, other_topic=True)
        if isinstance(user, Outcome):
            return user
        key = (p.user_id, p.title_id)
        guard = self._rating_guard(key)
        if guard is not None and at < guard:
            return Outcome(STALE.status, Reason.NEWER_STATE)
        self.ratings.pop(key, None)
        # Stored even when there was nothing to retract: the tombstone is what makes a late
        # delivery of the earlier submission stale.
        self.load_retraction(p.user_id, p.title_id, at)
        self.dirty_ratings[key] = None
        return STORED

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


# --- the store ------------------------------------------------------------------------


class InMemoryAccountStore:
    """The account store of the embedded mode: :class:`AccountState` in one process.

    Not durable beyond the process, which is what embedded mode means; everything else
    (rejections, duplicates, staleness, erasure) is exactly the PostgreSQL store's. A lock
    makes a batch atomic for readers on other threads (the API in embedded mode), as a
    transaction does for PostgreSQL readers.
    """

    sink = Sink.POSTGRES

    def __init__(self) -> None:
        self._state = AccountState()
        self._lock = threading.RLock()
        self._roles: dict[str, str] = {}

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        check_batch(events)
        deferred: set[Stream] | None = set() if allow_defer else None
        with self._lock:
            state = self._state
            outcomes = [state.apply(event, deferred) for event in events]
            state.clear_dirty()
            return outcomes

    def close(self) -> None:
        """Nothing to release; the data stays readable (it is the process's own)."""

    # -- AccountReader ----------------------------------------------------------------

    def get_user(self, user_id: str) -> User | None:
        with self._lock:
            return self._state.users.get(user_id)

    def get_user_by_email(self, email: str) -> Credentials | None:
        with self._lock:
            state = self._state
            user_id = state.user_by_email.get(email.strip().lower())
            password_hash = None if user_id is None else state.password_hashes[user_id]
            role = self._roles.get(user_id or "", "user")
        if user_id is None or password_hash is None:
            return None
        return Credentials(user_id, password_hash, role)

    def set_role(self, email: str, role: str) -> str | None:
        """Grant ``role`` to the live account of ``email``; its user id, or None if none."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self._lock:
            user_id = self._state.user_by_email.get(email.strip().lower())
            if user_id is not None:
                self._roles[user_id] = role
            return user_id

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._state.subscriptions.get(subscription_id)

    def get_subscriptions(self, user_id: str) -> list[Subscription]:
        with self._lock:
            state = self._state
            found = [state.subscriptions[s] for s in state.user_subscriptions.get(user_id, ())]
        return sorted(found, key=lambda s: (s.started_at, s.subscription_id))

    def get_active_subscription(self, user_id: str) -> Subscription | None:
        with self._lock:
            subscription_id = self._state.active_subscription.get(user_id)
            return None if subscription_id is None else self._state.subscriptions[subscription_id]

    def list_payments(self, user_id: str) -> list[Payment]:
        with self._lock:
            state = self._state
            found = [state.payments[p] for p in state.user_payments.get(user_id, ())]
        return sorted(found, key=lambda p: (p.occurred_at, p.payment_id))

    def get_preferences(self, user_id: str) -> Preferences | None:
        with self._lock:
            return self._state.preferences.get(user_id)

    def list_ratings(self, user_id: str) -> list[Rating]:
        with self._lock:
            state = self._state
            found = [
                rating
                for title_id in state.user_ratings.get(user_id, ())
                if (rating := state.ratings.get((user_id, title_id))) is not None
            ]
        return sorted(found, key=lambda r: r.title_id)

    def get_rating_stats(self, title_id: str) -> RatingStats:
        return self.list_rating_stats().get(title_id, RatingStats())

    def list_rating_stats(self) -> dict[str, RatingStats]:
        counts: dict[str, list[int]] = {}
        with self._lock:
            for rating in self._state.ratings.values():
                entry = counts.setdefault(rating.title_id, [0, 0])
                entry[0] += 1
                entry[1] += rating.stars
        return {title_id: RatingStats(n, total) for title_id, (n, total) in counts.items()}

    def get_processed_event(self, event_id: UUID) -> ProcessedEvent | None:
        with self._lock:
            return self._state.processed.get(event_id)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return self._state.dump()


__all__ = [
    "ACCOUNT_EVENT_TYPES",
    "CONSUMER",
    "DEFERRABLE_REASONS",
    "DUMP_KEYS",
    "AccountPayload",
    "AccountReader",
    "AccountState",
    "Credentials",
    "InMemoryAccountStore",
    "Payment",
    "PaymentStatus",
    "Preferences",
    "ProcessedEvent",
    "Rating",
    "RatingStats",
    "Reason",
    "Stream",
    "Subscription",
    "SubscriptionStatus",
    "User",
    "account_payload",
    "canonical_dump",
    "check_batch",
    "stream_of",
]
