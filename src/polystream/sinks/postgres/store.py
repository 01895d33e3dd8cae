"""``PostgresAccountStore``: the PostgreSQL sink's store (users, billing, preferences, ratings).

How a batch is applied, in one transaction and two round trips (psycopg pipeline mode):

1. **Load.** The ledger entries of the batch's event ids, and every row the batch can touch
   (users by id and by email, subscriptions by id, the active subscription of users who
   subscribe, payments, preference sets, ratings), ``SELECT ... FOR UPDATE`` so that a
   worker taking over a partition mid-rebalance waits instead of interleaving.
2. **Decide.** The domain's rules (:class:`~polystream.domain.accounts_rules.AccountState`, the
   in-memory store's too) run over the batch in order, in Python. Order inside the
   batch is therefore exact (register then update, subscribe then cancel), and a rejection
   costs nothing: it is an outcome, not a failed statement to roll back. So is a deferral
   (``allow_defer``: a prerequisite from another topic is missing): the event changes no row.
3. **Write.** The final state of each changed row, one set-based statement per table
   (``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE``, from ``batch_sql.py``),
   erasure cascades for rows not loaded, the ledger rows of every decided event (a deferred
   one is not decided: no row, so its next offer is new), and ``COMMIT``.

Per-event savepoints are only the fallback: when the set-based write fails on a constraint
(a concurrent writer took an email, or an email swap between users inside one batch that no
single-statement row order can satisfy) the batch is retried, and then applied one event
per savepoint, which also names the event at fault for a :class:`PermanentStoreError`.

Why not decide in SQL with staging tables: the rules read several tables per event and
depend on the outcome of earlier events of the same batch; in SQL that is either one
statement per event (slow) or a recursive query nobody can maintain. Loading the touched rows
is a handful of index lookups, and the decisions then cost microseconds per event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, assert_never
from uuid import UUID

import psycopg
from psycopg import errors as pgerrors

from polystream.domain import events as ev
from polystream.domain import reads
from polystream.domain.accounts import CONSUMER, Stream, account_payload, first_unfit
from polystream.domain.accounts_rules import AccountState
from polystream.domain.events import AnyEvent, Sink
from polystream.domain.outcomes import Outcome
from polystream.domain.reads import SubscriptionStatus
from polystream.settings import PostgresSettings
from polystream.sinks.postgres import batch_sql as sql
from polystream.sinks.postgres import queries
from polystream.sinks.postgres.queries import (
    Connection,
    Row,
    payment_from_row,
    preferences_from_row,
    rating_from_row,
    subscription_from_row,
    user_from_row,
)
from polystream.store_errors import PermanentStoreError, TransientStoreError

T = TypeVar("T")


class _Conflict(Exception):
    """The set-based write hit a constraint the loaded state said was free."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


def _constraint(error: psycopg.Error) -> str | None:
    return error.diag.constraint_name


def _describe(error: psycopg.Error) -> str:
    # The primary message names the constraint or the type, never row values (those are
    # only in diag.message_detail), so it is safe for dead-letter headers and logs.
    message = error.diag.message_primary or type(error).__name__
    constraint = _constraint(error)
    return f"{message} ({constraint})" if constraint else message


class PostgresAccountStore:
    """The accounts store on PostgreSQL: implements ``EventStore`` and ``AccountReader``.

    ``settings`` locate the server; nothing connects until the first call, and a broken
    connection is replaced on the next one. Thread-safe by serialising calls: the worker
    applies from one thread, and the API should use :mod:`~polystream.sinks.postgres.queries`
    with its own connections rather than share this one.
    """

    sink = Sink.POSTGRES

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        statement_timeout_s: float = 30.0,
        lock_timeout_s: float = 10.0,
        conflict_retries: int = 2,
        application_name: str = "polystream-postgres-sink",
    ) -> None:
        self._settings = settings
        # Timeouts turn a stuck lock or a runaway query into a transient error the worker
        # retries, instead of a sink that hangs without saying why.
        #
        # The two planner settings are measured, not folklore (20,000-100,000 events in
        # 500-event batches): the lookups take arrays of 1 to 500 keys, and a generic plan
        # cached by a prepared statement while a table was small kept seq-scanning it as it
        # grew (21k events/s falling to 5k); with the default random_page_cost of 4 the
        # planner also preferred seq scans of tables of a few 10,000 rows (a 9 ms ratings
        # lookup instead of 0.4 ms). Custom plans and a cost that matches cached/SSD pages
        # kept a steady ~25k events/s.
        self._options = (
            f"-c statement_timeout={int(statement_timeout_s * 1000)}"
            f" -c lock_timeout={int(lock_timeout_s * 1000)} -c TimeZone=UTC"
            " -c plan_cache_mode=force_custom_plan -c random_page_cost=1.1"
        )
        self._application_name = application_name
        self._conflict_retries = conflict_retries
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._allow_defer = True  # of the apply in progress

    # -- connection ---------------------------------------------------------------------

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._discard()
        try:
            conn = psycopg.connect(
                self._settings.dsn(),
                autocommit=True,
                options=self._options,
                application_name=self._application_name,
            )
        except psycopg.Error as exc:
            raise TransientStoreError(f"cannot connect to PostgreSQL: {_describe(exc)}") from exc
        self._conn = conn
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):  # already gone: closing is best effort
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._discard()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors become the port's errors; the connection is dropped if unusable."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Connection loss, admin shutdown, timeouts, serialization failures, deadlocks:
            # nothing was committed, so the whole batch can be retried as is.
            self._reset_if_unusable()
            raise TransientStoreError(f"PostgreSQL unavailable: {_describe(exc)}") from exc
        except psycopg.Error as exc:
            # Anything else is not the event's fault (schema not migrated, a bug): the sink
            # must stop and wait rather than dead-letter events it simply cannot store yet.
            self._reset_if_unusable()
            raise TransientStoreError(f"PostgreSQL error: {_describe(exc)}") from exc

    def _reset_if_unusable(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._discard()
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._discard()

    def _read(self, query: Callable[[Connection], T]) -> T:
        with self._lock, self._translated():
            return query(self._connection())

    # -- EventStore ---------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        """See ``EventStore.apply``; what is deferred, and why, is decided by the shared
        rules (``domain/accounts*.py``): a deferred event gets no ledger row and no row change."""
        if not events:
            return []
        check_batch(events)
        with self._lock, self._translated():
            # Read by both paths below; set under the lock, which serialises every apply.
            self._allow_defer = allow_defer
            for _ in range(self._conflict_retries):
                try:
                    return self._apply_batch(events)
                except _Conflict as conflict:
                    # A unique or foreign key conflict means the loaded state was overtaken
                    # by another writer (a worker still finishing a partition it lost in a
                    # rebalance, an email registered on another partition): the next attempt
                    # loads the new rows. Anything else is a value PostgreSQL refuses; only
                    # the event-by-event path can say which event it is.
                    if not isinstance(
                        conflict.error, (pgerrors.UniqueViolation, pgerrors.ForeignKeyViolation)
                    ):
                        break
            return self._apply_one_by_one(events)

    def _apply_batch(self, events: Sequence[AnyEvent]) -> list[Outcome]:
        conn = self._connection()
        state = AccountState()
        deferred: set[Stream] | None = set() if self._allow_defer else None
        try:
            with conn.pipeline(), conn.transaction():
                _load(conn, state, events)
                outcomes = [state.apply(event, deferred) for event in events]
                _flush(conn, state)
        except (psycopg.IntegrityError, psycopg.DataError) as exc:
            raise _Conflict(exc) from exc
        return outcomes

    def _apply_one_by_one(self, events: Sequence[AnyEvent]) -> list[Outcome]:
        # No pipeline here, so that each savepoint's error surfaces at its own event. Each
        # event's writes are a consistent step on their own, so row order no longer matters.
        conn = self._connection()
        state = AccountState()
        deferred: set[Stream] | None = set() if self._allow_defer else None
        outcomes: list[Outcome] = []
        with conn.transaction():
            _load(conn, state, events)
            for event in events:
                outcomes.append(state.apply(event, deferred))
                try:
                    with conn.transaction():
                        _flush(conn, state)
                except (pgerrors.UniqueViolation, pgerrors.ForeignKeyViolation) as exc:
                    # The loaded state missed a row another writer has just committed.
                    raise TransientStoreError(
                        f"concurrent write ({_constraint(exc)}); retry the batch"
                    ) from exc
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    raise PermanentStoreError(event.event_id, _describe(exc)) from exc
                state.clear_dirty()
        return outcomes

    # -- AccountReader --------------------------------------------------------------------

    def get_user(self, user_id: str) -> reads.User | None:
        return self._read(lambda conn: queries.get_user(conn, user_id))

    def get_user_by_email(self, email: str) -> reads.Credentials | None:
        return self._read(lambda conn: queries.get_user_by_email(conn, email))

    def set_role(self, email: str, role: str) -> str | None:
        """Grant ``role`` to the live account of ``email`` (an operator's act, not an event:
        roles are authorization, which replaying the events must not grant or take away)."""
        if role not in reads.ROLES:
            raise ValueError(f"role must be one of {', '.join(reads.ROLES)}")
        return self._read(lambda conn: queries.set_role(conn, email, role))

    def get_subscription(self, subscription_id: str) -> reads.Subscription | None:
        return self._read(lambda conn: queries.get_subscription(conn, subscription_id))

    def get_subscriptions(self, user_id: str) -> list[reads.Subscription]:
        return self._read(lambda conn: queries.get_subscriptions(conn, user_id))

    def get_active_subscription(self, user_id: str) -> reads.Subscription | None:
        return self._read(lambda conn: queries.get_active_subscription(conn, user_id))

    def list_payments(self, user_id: str) -> list[reads.Payment]:
        return self._read(lambda conn: queries.list_payments(conn, user_id))

    def get_preferences(self, user_id: str) -> reads.Preferences | None:
        return self._read(lambda conn: queries.get_preferences(conn, user_id))

    def list_ratings(self, user_id: str) -> list[reads.Rating]:
        return self._read(lambda conn: queries.list_ratings(conn, user_id))

    def get_rating_stats(self, title_id: str) -> reads.RatingStats:
        return self._read(lambda conn: queries.get_rating_stats(conn, title_id))

    def list_rating_stats(self) -> dict[str, reads.RatingStats]:
        return self._read(queries.list_rating_stats)

    def get_processed_event(self, event_id: UUID) -> reads.ProcessedEvent | None:
        return self._read(lambda conn: queries.get_processed_event(conn, event_id))

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        def in_one_snapshot(conn: Connection) -> dict[str, list[dict[str, Any]]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return queries.dump(conn)

        return self._read(in_one_snapshot)


# --- load and flush -----------------------------------------------------------------------


def check_batch(events: Sequence[AnyEvent]) -> None:
    """Refuse, before anything is applied, an event no account store can ever apply."""
    if (unfit := first_unfit(events)) is not None:
        raise PermanentStoreError(*unfit)


@dataclass
class _Keys:
    """The keys of every row the rules may read for a batch."""

    user_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    subscription_ids: set[str] = field(default_factory=set)
    subscribers: set[str] = field(default_factory=set)
    payment_ids: set[str] = field(default_factory=set)
    preference_users: set[str] = field(default_factory=set)
    ratings: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, events: Sequence[AnyEvent]) -> _Keys:
        keys = cls()
        for event in events:
            payload = account_payload(event)
            keys.user_ids.add(payload.user_id)
            match payload:
                case ev.UserRegistered() | ev.UserProfileUpdated():
                    if payload.email is not None:
                        keys.emails.add(payload.email)
                case ev.UserErased() | ev.PreferencesUpdated():
                    keys.preference_users.add(payload.user_id)
                case ev.SubscriptionStarted():
                    keys.subscription_ids.add(payload.subscription_id)
                    keys.subscribers.add(payload.user_id)
                case (
                    ev.SubscriptionPlanChanged()
                    | ev.SubscriptionRenewed()
                    | ev.SubscriptionCanceled()
                ):
                    keys.subscription_ids.add(payload.subscription_id)
                case ev.PaymentSucceeded() | ev.PaymentFailed() | ev.PaymentRefunded():
                    keys.payment_ids.add(payload.payment_id)
                    keys.subscription_ids.add(payload.subscription_id)
                case ev.RatingSubmitted() | ev.RatingRetracted():
                    keys.ratings.add((payload.user_id, payload.title_id))
                case _:
                    assert_never(payload)
        return keys


def _load(conn: Connection, state: AccountState, events: Sequence[AnyEvent]) -> None:
    """Load into ``state`` every row the rules may read for ``events`` (see AccountRows)."""
    keys = _Keys.of(events)

    def load_user(row: Row) -> None:
        state.load_user(user_from_row(row), row[8])

    def load_subscription(row: Row) -> None:
        state.load_subscription(subscription_from_row(row))

    def load_payment(row: Row) -> None:
        state.load_payment(payment_from_row(row), row[15])

    def load_preferences(row: Row) -> None:
        state.load_preferences(preferences_from_row(row))

    def load_rating(row: Row) -> None:
        # A retracted rating is a tombstone row: no stars, the retraction's time.
        if row[2] is None:
            state.load_retraction(row[0], row[1], row[5])
        else:
            state.load_rating(rating_from_row(row))

    lookups: list[tuple[str, set[str], Callable[[Row], None]]] = [
        (sql.LOAD_USERS, keys.user_ids, load_user),
        (sql.LOAD_USERS_BY_EMAIL, keys.emails, load_user),
        (sql.LOAD_SUBSCRIPTIONS, keys.subscription_ids, load_subscription),
        (sql.LOAD_ACTIVE_SUBSCRIPTIONS, keys.subscribers, load_subscription),
        (sql.LOAD_PAYMENTS, keys.payment_ids, load_payment),
        (sql.LOAD_PREFERENCES, keys.preference_users, load_preferences),
    ]
    # Queued together in the pipeline: one round trip for all of them.
    event_ids = sql.plain(event.event_id for event in events)
    pending: list[tuple[psycopg.Cursor[Row], Callable[[Row], None]]] = [
        (
            conn.execute(sql.LOAD_LEDGER, (CONSUMER, event_ids)),
            lambda row: state.load_processed(row[0]),
        )
    ]
    pending += [
        (conn.execute(statement, (sql.texts(sorted(wanted)),)), load)
        for statement, wanted, load in lookups
        if wanted
    ]
    if keys.ratings:
        pairs = sorted(keys.ratings)
        users, titles = sql.texts(u for u, _ in pairs), sql.texts(t for _, t in pairs)
        ratings = conn.execute(sql.LOAD_RATINGS, (users, titles))
        pending.append((ratings, load_rating))
    for cursor, load in pending:
        for row in cursor.fetchall():
            load(row)


def _fields(record: Any) -> tuple[Any, ...]:
    """A record's fields in order: the column order of its upsert (see ``batch_sql``)."""
    return tuple(getattr(record, column.name) for column in fields(record))


def _rating_row(state: AccountState, key: tuple[str, str]) -> tuple[Any, ...]:
    rating, retracted_at = state.ratings.get(key), state.retractions.get(key)
    if rating is None:
        return (*key, None, None, retracted_at, retracted_at)
    return (*key, rating.stars, rating.review, rating.rated_at, retracted_at)


def _flush(conn: Connection, state: AccountState) -> None:
    """Queue the writes of everything ``state`` marked dirty, and the ledger rows."""
    hashes, tokens, preferences = state.password_hashes, state.card_tokens, state.preferences
    dirty_payments = state.dirty_payments
    # Cancellations first: a user who cancels and subscribes again in one batch must not have
    # two active rows, even for the instant between two rows of one statement.
    subscriptions = sorted(
        (state.subscriptions[key] for key in state.dirty_subscriptions),
        key=lambda s: s.status is SubscriptionStatus.ACTIVE,
    )
    kept = [key for key in state.dirty_preferences if key in preferences]
    # Each row: the record's fields, then the secret the record leaves out (batch_sql's order).
    writes: list[tuple[sql.Upsert, list[tuple[Any, ...]]]] = [
        (sql.UPSERT_USERS, [(*_fields(state.users[k]), hashes[k]) for k in state.dirty_users]),
        (sql.UPSERT_SUBSCRIPTIONS, [_fields(s) for s in subscriptions]),
        (sql.UPSERT_PAYMENTS, [(*_fields(state.payments[k]), tokens[k]) for k in dirty_payments]),
        (sql.UPSERT_PREFERENCES, [_fields(preferences[key]) for key in kept]),
        (sql.UPSERT_RATINGS, [_rating_row(state, key) for key in state.dirty_ratings]),
    ]
    for upsert, rows in writes:
        if rows:
            conn.execute(upsert.sql, upsert.params(rows))
    deleted = [key for key in state.dirty_preferences if key not in preferences]
    if deleted:
        conn.execute(sql.DELETE_PREFERENCES, (sql.texts(deleted),))
    if state.erased_users:
        erased = sql.texts(state.erased_users)
        conn.execute(sql.ERASE_REVIEWS, (erased,))
        conn.execute(sql.ERASE_CARD_TOKENS, (erased,))
    if entries := state.new_processed:
        conn.execute(
            sql.INSERT_LEDGER,
            (
                CONSUMER,
                sql.plain(e.event_id for e in entries),
                sql.texts(e.event_type for e in entries),
                sql.texts(e.status for e in entries),
                sql.texts(e.reason for e in entries),
            ),
        )


__all__ = ["PostgresAccountStore", "check_batch"]
