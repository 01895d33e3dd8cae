"""The accounts family: which events it takes, why it refuses one, and what may wait.

Users, subscriptions, payments, preferences and ratings (the PostgreSQL sink's share). What an
event does to them is decided once, in pure code, by
:class:`~polystream.domain.accounts_rules.AccountState`, over the rows of
:mod:`~polystream.domain.accounts_rows`; both account stores run those rules:

* ``InMemoryAccountStore`` (``sinks/memory_accounts.py``) keeps one complete state in dicts;
* ``PostgresAccountStore`` (``sinks/postgres/``) loads into a fresh state only the rows a batch
  touches (locked ``FOR UPDATE``), runs the same rules over the batch in order, and writes back
  the rows the state marked dirty, set-based.

So the two stores cannot drift apart in their semantics, and the contract tests check the
same thing twice: the rules, and the storage of their results.

Times stored on rows (``created_at``, ``updated_at``, ...) are event times (``occurred_at``),
never wall-clock times: they are the guards that keep an older event from overwriting newer
state, and replaying the log must rebuild exactly the same rows.

Deferral. The sink reads three topics, and Kafka orders events per partition, not across
topics: a ``subscription.started`` or a ``rating.submitted`` may arrive before the
``user.registered`` of its user. With deferral allowed such an event gets a
:func:`~polystream.domain.outcomes.missing_prerequisite` outcome and leaves no trace (no ledger
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

Without deferral (the worker's last attempt, after its deadline) the same rejections are
final and recorded in the ledger, exactly like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Final, NamedTuple
from uuid import UUID

from polystream.domain import events as ev
from polystream.domain.events import EVENT_TYPES, AnyEvent, Sink, event_types_for

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


class Unfit(NamedTuple):
    """An event no account store can ever apply, and why (no field values in ``reason``).
    The stores raise it as their permanent error, which dead-letters the event."""

    event_id: UUID
    reason: str


def account_payload(event: AnyEvent) -> AccountPayload:
    """The payload of an event :func:`first_unfit` let through."""
    payload = event.payload
    if not isinstance(payload, AccountPayload):
        raise TypeError(f"{event.type} is not an account event")
    return payload


def stream_of(event: AnyEvent) -> Stream:
    """The per-user, per-topic stream of an account event (every one carries a user id)."""
    return account_payload(event).user_id, EVENT_TYPES[event.type].family.value


def _free_text(payload: AccountPayload) -> dict[str, str | None]:
    """The free-text fields this family stores (ids, codes and hashes are patterns)."""
    match payload:
        case ev.UserRegistered() | ev.UserProfileUpdated():
            return {"display_name": payload.display_name}
        case ev.RatingSubmitted():
            return {"review": payload.review}
        case _:
            return {}


def first_unfit(events: Sequence[AnyEvent]) -> Unfit | None:
    """The first event of the batch no account store can ever apply, if any.

    Checked before anything is applied, so a batch is applied whole or not at all: the worker
    dead-letters the named event and redelivers the others, which must then still be new.
    """
    for event in events:
        payload = event.payload
        if not isinstance(payload, AccountPayload):
            return Unfit(event.event_id, f"{event.type} is not an account event")
        # PostgreSQL text cannot hold NUL, and the contract's free-text types allow control
        # characters. Both stores refuse it, so that they agree.
        for field, text in _free_text(payload).items():
            if text is not None and "\x00" in text:
                return Unfit(event.event_id, f"{field} contains a NUL character")
    return None


__all__ = [
    "ACCOUNT_EVENT_TYPES",
    "CONSUMER",
    "DEFERRABLE_REASONS",
    "AccountPayload",
    "Reason",
    "Stream",
    "Unfit",
    "account_payload",
    "first_unfit",
    "stream_of",
]
