"""The rules of the accounts family: what each event does to :class:`AccountRows`.

Pure code (no I/O): both account stores run :meth:`AccountState.apply` over a batch in order,
the in-memory store over all its rows, PostgreSQL over the rows it loaded for the batch (see
:mod:`polystream.domain.accounts` for the family, its reasons and deferral). One rule per
payload class, registered with :func:`functools.singledispatch`; a test checks every account
event type has one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import singledispatch

from polystream.domain import events as ev
from polystream.domain import reads
from polystream.domain.accounts import Reason, Stream, account_payload, stream_of
from polystream.domain.accounts_rows import AccountRows
from polystream.domain.events import AnyEvent, ReceiptStatus
from polystream.domain.outcomes import DUPLICATE, STORED, Outcome, missing_prerequisite, rejected
from polystream.domain.reads import PaymentStatus, SubscriptionStatus


class AccountState(AccountRows):
    """The rows of the accounts family and the rules that change them."""

    def apply(self, event: AnyEvent, deferred: set[Stream] | None = None) -> Outcome:
        """Apply one event (already let through by
        :func:`~polystream.domain.accounts.first_unfit`) and record it in the ledger, whatever
        the outcome: a refused event must stay refused on replay, even if a later event would
        now let it through.

        ``deferred`` allows deferral: it holds the streams (see
        :func:`~polystream.domain.accounts.stream_of`) with a deferred event earlier in the
        batch, and gains this event's stream if it is deferred too. A deferred event is
        neither applied nor recorded. ``None`` (no deferral): a missing prerequisite is a final
        rejection, recorded like any other.
        """
        if event.event_id in self.processed:
            return DUPLICATE
        if deferred is not None and stream_of(event) in deferred:
            return missing_prerequisite(Reason.WAITING)
        outcome = _decide(account_payload(event), self, event.occurred_at)
        if outcome.retryable:
            # The rules return before changing anything when a prerequisite is missing.
            if deferred is not None:
                deferred.add(stream_of(event))
                return outcome
            outcome = replace(outcome, retryable=False)
        status, reason = outcome.status.value, outcome.reason
        entry = reads.ProcessedEvent(event.event_id, event.type, status, reason)
        self.processed[event.event_id] = entry
        self.new_processed.append(entry)
        return outcome


def _stale(reason: Reason) -> Outcome:
    return Outcome(ReceiptStatus.STALE, reason)


@singledispatch
def _decide(p: object, state: AccountRows, at: datetime) -> Outcome:
    """What the event with payload ``p``, which happened ``at``, does to ``state``."""
    raise TypeError(f"no account rule for {type(p).__name__}")


def _live_user(
    state: AccountRows, user_id: str, *, other_topic: bool = False
) -> reads.User | Outcome:
    """The user, not erased. ``other_topic``: the event comes from another topic than the
    user's registration, so an unknown user may simply not have been read yet."""
    user = state.users.get(user_id)
    if user is None:
        if other_topic:
            return missing_prerequisite(Reason.UNKNOWN_USER)
        return rejected(Reason.UNKNOWN_USER)
    if user.erased_at is not None:
        return rejected(Reason.USER_ERASED)
    return user


@_decide.register
def _user_registered(p: ev.UserRegistered, state: AccountRows, at: datetime) -> Outcome:
    if p.user_id in state.users:
        return rejected(Reason.USER_EXISTS)
    if p.email in state.user_by_email:
        return rejected(Reason.EMAIL_TAKEN)
    user = reads.User(p.user_id, p.email, p.display_name, p.country, p.birth_year, at, at)
    state.put_user(user, p.password_hash)
    return STORED


@_decide.register
def _user_profile_updated(p: ev.UserProfileUpdated, state: AccountRows, at: datetime) -> Outcome:
    if isinstance(user := _live_user(state, p.user_id), Outcome):
        return user
    if at < user.updated_at:
        return _stale(Reason.NEWER_STATE)
    if p.email is not None and state.user_by_email.get(p.email, p.user_id) != p.user_id:
        return rejected(Reason.EMAIL_TAKEN)
    changed = replace(
        user,
        email=user.email if p.email is None else p.email,
        display_name=user.display_name if p.display_name is None else p.display_name,
        country=user.country if p.country is None else p.country,
        birth_year=user.birth_year if p.birth_year is None else p.birth_year,
        updated_at=at,
    )
    state.put_user(changed, state.password_hashes[p.user_id])
    return STORED


@_decide.register
def _user_erased(p: ev.UserErased, state: AccountRows, at: datetime) -> Outcome:
    if (user := state.users.get(p.user_id)) is None:
        return rejected(Reason.UNKNOWN_USER)
    if user.erased_at is not None:
        return _stale(Reason.ALREADY_ERASED)
    # Erasure wins whatever its event time: a profile edit that happened "later" must
    # not keep personal data alive.
    erased = reads.User(
        p.user_id, None, None, None, None, user.created_at, max(at, user.updated_at), at
    )
    state.put_user(erased, None)
    state.erased_users[p.user_id] = None
    state.drop_preferences(p.user_id)
    # Ratings stay (they are the titles' statistics, now under an anonymous id) but the
    # review text is the person's own words. Payments stay (accounting), but the card
    # token could still charge the person, so it goes.
    for title_id in tuple(state.user_ratings.get(p.user_id, ())):
        rating = state.ratings.get((p.user_id, title_id))
        if rating is not None and rating.review is not None:
            state.put_rating(replace(rating, review=None))
    for payment_id in tuple(state.user_payments.get(p.user_id, ())):
        if state.card_tokens.get(payment_id) is not None:
            state.put_payment(state.payments[payment_id], None)
    return STORED


@_decide.register
def _preferences_updated(p: ev.PreferencesUpdated, state: AccountRows, at: datetime) -> Outcome:
    if isinstance(user := _live_user(state, p.user_id), Outcome):
        return user
    current = state.preferences.get(p.user_id)
    if current is not None and at < current.updated_at:
        return _stale(Reason.NEWER_STATE)
    preferences = reads.Preferences(
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
    state.put_preferences(preferences)
    return STORED


@_decide.register
def _subscription_started(p: ev.SubscriptionStarted, state: AccountRows, at: datetime) -> Outcome:
    if isinstance(user := _live_user(state, p.user_id, other_topic=True), Outcome):
        return user
    if p.subscription_id in state.subscriptions:
        return rejected(Reason.SUBSCRIPTION_EXISTS)
    if p.user_id in state.active_subscription:
        return rejected(Reason.ALREADY_SUBSCRIBED)
    state.put_subscription(
        reads.Subscription(
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
    state: AccountRows, at: datetime, subscription_id: str, user_id: str
) -> reads.Subscription | Outcome:
    subscription = state.subscriptions.get(subscription_id)
    if subscription is None:
        # Its subscription.started may be deferred, waiting for the user.
        return missing_prerequisite(Reason.UNKNOWN_SUBSCRIPTION)
    if subscription.user_id != user_id:
        return rejected(Reason.NOT_SUBSCRIPTION_OWNER)
    # Stale before canceled: a change that happened before the cancellation but arrived
    # after it is simply old news, not a change the user attempted on a dead subscription.
    if at < subscription.updated_at:
        return _stale(Reason.NEWER_STATE)
    if subscription.status is SubscriptionStatus.CANCELED:
        return rejected(Reason.SUBSCRIPTION_CANCELED)
    return subscription


@_decide.register
def _subscription_plan_changed(
    p: ev.SubscriptionPlanChanged, state: AccountRows, at: datetime
) -> Outcome:
    if isinstance(subscription := _changeable(state, at, p.subscription_id, p.user_id), Outcome):
        return subscription
    if subscription.plan != p.from_plan:
        return rejected(Reason.PLAN_MISMATCH)
    state.put_subscription(replace(subscription, plan=p.to_plan, updated_at=at))
    return STORED


@_decide.register
def _subscription_renewed(p: ev.SubscriptionRenewed, state: AccountRows, at: datetime) -> Outcome:
    if isinstance(subscription := _changeable(state, at, p.subscription_id, p.user_id), Outcome):
        return subscription
    renewed = replace(
        subscription,
        plan=p.plan,
        period_start=p.period_start,
        period_end=p.period_end,
        updated_at=at,
        last_payment_id=p.payment_id or subscription.last_payment_id,
    )
    state.put_subscription(renewed)
    return STORED


@_decide.register
def _subscription_canceled(p: ev.SubscriptionCanceled, state: AccountRows, at: datetime) -> Outcome:
    current = state.subscriptions.get(p.subscription_id)
    if (
        current is not None
        and current.status is SubscriptionStatus.CANCELED
        and current.user_id == p.user_id
    ):
        return _stale(Reason.ALREADY_CANCELED)
    if isinstance(subscription := _changeable(state, at, p.subscription_id, p.user_id), Outcome):
        return subscription
    canceled = replace(
        subscription,
        status=SubscriptionStatus.CANCELED,
        updated_at=at,
        canceled_at=at,
        ends_at=p.ends_at,
        cancel_reason=p.reason.value,
    )
    state.put_subscription(canceled)
    return STORED


@_decide.register
def _payment_recorded(
    p: ev.PaymentSucceeded | ev.PaymentFailed, state: AccountRows, at: datetime
) -> Outcome:
    if p.payment_id in state.payments:
        return rejected(Reason.PAYMENT_EXISTS)
    subscription = state.subscriptions.get(p.subscription_id)
    if subscription is None:
        return missing_prerequisite(Reason.UNKNOWN_SUBSCRIPTION)
    if subscription.user_id != p.user_id:
        return rejected(Reason.NOT_SUBSCRIPTION_OWNER)
    if subscription.status is SubscriptionStatus.CANCELED:
        return rejected(Reason.SUBSCRIPTION_CANCELED)
    failed = isinstance(p, ev.PaymentFailed)
    payment = reads.Payment(
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
    state.put_payment(payment, p.card_token)
    return STORED


@_decide.register
def _payment_refunded(p: ev.PaymentRefunded, state: AccountRows, at: datetime) -> Outcome:
    if (payment := state.payments.get(p.payment_id)) is None:
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
    state.put_payment(refunded, state.card_tokens[p.payment_id])
    return STORED


def _unratable(
    state: AccountRows, p: ev.RatingSubmitted | ev.RatingRetracted, at: datetime
) -> Outcome | None:
    """Why a rating change cannot apply (its user, or a newer change of the same rating)."""
    if isinstance(user := _live_user(state, p.user_id, other_topic=True), Outcome):
        return user
    key = (p.user_id, p.title_id)
    rating = state.ratings.get(key)
    guard = rating.rated_at if rating is not None else state.retractions.get(key)
    if guard is not None and at < guard:
        return _stale(Reason.NEWER_STATE)
    return None


@_decide.register
def _rating_submitted(p: ev.RatingSubmitted, state: AccountRows, at: datetime) -> Outcome:
    if (refused := _unratable(state, p, at)) is not None:
        return refused
    state.put_rating(reads.Rating(p.user_id, p.title_id, p.stars, p.review, at))
    return STORED


@_decide.register
def _rating_retracted(p: ev.RatingRetracted, state: AccountRows, at: datetime) -> Outcome:
    if (refused := _unratable(state, p, at)) is not None:
        return refused
    # Stored even when there was nothing to retract: the tombstone is what makes a late
    # delivery of the earlier submission stale.
    state.put_retraction(p.user_id, p.title_id, at)
    return STORED


__all__ = ["AccountState"]
