"""Accounts in memory: the embedded mode's account store, a thin store over the domain.

The rules (who may register which email, when a subscription change is stale, what a refund
needs, which event must wait for another) live in :mod:`polystream.domain.accounts` and its
``accounts_rules``/``accounts_rows`` modules; ``PostgresAccountStore`` runs the very same
rules, so the two stores cannot drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from polystream.domain import reads
from polystream.domain.accounts import Stream, first_unfit
from polystream.domain.accounts_rules import AccountState
from polystream.domain.events import AnyEvent, Sink
from polystream.domain.outcomes import Outcome
from polystream.store_errors import PermanentStoreError

T = TypeVar("T")


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
        if (unfit := first_unfit(events)) is not None:
            raise PermanentStoreError(*unfit)
        deferred: set[Stream] | None = set() if allow_defer else None
        with self._lock:
            state = self._state
            outcomes = [state.apply(event, deferred) for event in events]
            state.clear_dirty()
            return outcomes

    def close(self) -> None:
        """Nothing to release; the data stays readable (it is the process's own)."""

    # -- AccountReader ----------------------------------------------------------------

    def _read(self, query: Callable[[AccountState], T]) -> T:
        with self._lock:
            return query(self._state)

    def get_user(self, user_id: str) -> reads.User | None:
        return self._read(lambda state: state.users.get(user_id))

    def get_user_by_email(self, email: str) -> reads.Credentials | None:
        with self._lock:
            state = self._state
            user_id = state.user_by_email.get(email.strip().lower())
            password_hash = None if user_id is None else state.password_hashes[user_id]
            role = self._roles.get(user_id or "", "user")
        if user_id is None or password_hash is None:
            return None
        return reads.Credentials(user_id, password_hash, role)

    def set_role(self, email: str, role: str) -> str | None:
        """Grant ``role`` to the live account of ``email``; its user id, or None if none."""
        if role not in reads.ROLES:
            raise ValueError(f"role must be one of {', '.join(reads.ROLES)}")
        with self._lock:
            user_id = self._state.user_by_email.get(email.strip().lower())
            if user_id is not None:
                self._roles[user_id] = role
            return user_id

    def get_subscription(self, subscription_id: str) -> reads.Subscription | None:
        return self._read(lambda state: state.subscriptions.get(subscription_id))

    def get_subscriptions(self, user_id: str) -> list[reads.Subscription]:
        return self._read(lambda state: state.subscriptions_of(user_id))

    def get_active_subscription(self, user_id: str) -> reads.Subscription | None:
        return self._read(lambda state: state.active_subscription_of(user_id))

    def list_payments(self, user_id: str) -> list[reads.Payment]:
        return self._read(lambda state: state.payments_of(user_id))

    def get_preferences(self, user_id: str) -> reads.Preferences | None:
        return self._read(lambda state: state.preferences.get(user_id))

    def list_ratings(self, user_id: str) -> list[reads.Rating]:
        return self._read(lambda state: state.ratings_of(user_id))

    def get_rating_stats(self, title_id: str) -> reads.RatingStats:
        return self.list_rating_stats().get(title_id, reads.RatingStats())

    def list_rating_stats(self) -> dict[str, reads.RatingStats]:
        return self._read(AccountState.rating_stats)

    def get_processed_event(self, event_id: UUID) -> reads.ProcessedEvent | None:
        return self._read(lambda state: state.processed.get(event_id))

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return self._read(AccountState.dump)


__all__ = ["InMemoryAccountStore"]
