"""``PostgresAccountStore``: the PostgreSQL sink's store (users, billing, preferences, ratings).

How a batch is applied, in one transaction and two round trips (psycopg pipeline mode):

1. **Load.** The ledger entries of the batch's event ids, and every row the batch can touch
   (users by id and by email, subscriptions by id, the active subscription of users who
   subscribe, payments, preference sets, ratings), ``SELECT ... FOR UPDATE`` so that a
   worker taking over a partition mid-rebalance waits instead of interleaving.
2. **Decide.** The shared rules (:class:`~polystream.sinks.memory_accounts.AccountState`, the
   in-memory store's own logic) run over the batch in order, in Python. Order inside the
   batch is therefore exact (register then update, subscribe then cancel), and a rejection
   costs nothing: it is an outcome, not a failed statement to roll back. So is a deferral
   (``allow_defer``: a prerequisite from another topic is missing): the event changes no row.
3. **Write.** The final state of each changed row, one set-based statement per table
   (``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE``), erasure cascades for
   rows not loaded, the ledger rows of every decided event (a deferred one is not decided:
   no row, so its next offer is new), and ``COMMIT``.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Final, TypeVar, assert_never
from uuid import UUID

import psycopg
from psycopg import errors as pgerrors

from polystream.domain import events as ev
from polystream.domain.events import AnyEvent, Sink
from polystream.domain.reads import (
    ROLES,
    Credentials,
    Payment,
    Preferences,
    ProcessedEvent,
    Rating,
    RatingStats,
    Subscription,
    SubscriptionStatus,
    User,
)
from polystream.settings import PostgresSettings
from polystream.sinks.memory_accounts import (
    CONSUMER,
    AccountState,
    Stream,
    account_payload,
    check_batch,
)
from polystream.sinks.ports import Outcome
from polystream.sinks.postgres import queries
from polystream.sinks.postgres.queries import (
    PAYMENT_COLUMNS,
    PREFERENCES_COLUMNS,
    RATING_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    USER_COLUMNS,
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

# --- load -----------------------------------------------------------------------------
# ORDER BY before FOR UPDATE: two workers locking overlapping rows in the same order cannot
# deadlock each other.

_LOAD_LEDGER: Final = (
    "SELECT event_id FROM processed_events WHERE consumer = %s AND event_id = ANY(%s::uuid[])"
)
_LOAD_USERS: Final = (
    f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ANY(%s::text[]) ORDER BY user_id FOR UPDATE"
)
_LOAD_USERS_BY_EMAIL: Final = (
    f"SELECT {USER_COLUMNS} FROM users WHERE email = ANY(%s::text[]) ORDER BY user_id FOR UPDATE"
)
_LOAD_SUBSCRIPTIONS: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = ANY(%s::text[])"
    " ORDER BY subscription_id FOR UPDATE"
)
_LOAD_ACTIVE_SUBSCRIPTIONS: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
    " WHERE user_id = ANY(%s::text[]) AND status = 'active' ORDER BY subscription_id FOR UPDATE"
)
_LOAD_PAYMENTS: Final = (
    f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = ANY(%s::text[])"
    " ORDER BY payment_id FOR UPDATE"
)
_LOAD_PREFERENCES: Final = (
    f"SELECT {PREFERENCES_COLUMNS} FROM preferences WHERE user_id = ANY(%s::text[])"
    " ORDER BY user_id FOR UPDATE"
)
_LOAD_RATINGS: Final = (
    "SELECT r.user_id, r.title_id, r.stars, r.review, r.updated_at, r.retracted_at"
    " FROM ratings r JOIN unnest(%s::text[], %s::text[]) AS k(user_id, title_id)"
    " ON r.user_id = k.user_id AND r.title_id = k.title_id"
    " ORDER BY r.user_id, r.title_id FOR UPDATE OF r"
)
assert RATING_COLUMNS == "user_id, title_id, stars, review, updated_at, retracted_at"

# --- write ----------------------------------------------------------------------------
# unnest(...) WITH ORDINALITY ... ORDER BY: rows are written in the order given, which the
# one-active-subscription index and the email constraint need (see _flush).

_UPSERT_USERS: Final = """
INSERT INTO users (user_id, email, display_name, country, birth_year, password_hash,
                   created_at, updated_at, erased_at)
SELECT user_id, email, display_name, country, birth_year, password_hash,
       created_at, updated_at, erased_at
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int2[], %s::text[],
            %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
     WITH ORDINALITY AS u(user_id, email, display_name, country, birth_year, password_hash,
                          created_at, updated_at, erased_at, n)
ORDER BY n
ON CONFLICT (user_id) DO UPDATE SET
    email = excluded.email, display_name = excluded.display_name,
    country = excluded.country, birth_year = excluded.birth_year,
    password_hash = excluded.password_hash, updated_at = excluded.updated_at,
    erased_at = excluded.erased_at
"""

_UPSERT_SUBSCRIPTIONS: Final = """
INSERT INTO subscriptions (subscription_id, user_id, plan, status, period_start, period_end,
                           started_at, updated_at, canceled_at, ends_at, cancel_reason,
                           last_payment_id)
SELECT subscription_id, user_id, plan, status, period_start, period_end, started_at,
       updated_at, canceled_at, ends_at, cancel_reason, last_payment_id
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[],
            %s::timestamptz[], %s::text[], %s::text[])
     WITH ORDINALITY AS s(subscription_id, user_id, plan, status, period_start, period_end,
                          started_at, updated_at, canceled_at, ends_at, cancel_reason,
                          last_payment_id, n)
ORDER BY n
ON CONFLICT (subscription_id) DO UPDATE SET
    plan = excluded.plan, status = excluded.status, period_start = excluded.period_start,
    period_end = excluded.period_end, updated_at = excluded.updated_at,
    canceled_at = excluded.canceled_at, ends_at = excluded.ends_at,
    cancel_reason = excluded.cancel_reason, last_payment_id = excluded.last_payment_id
"""

_UPSERT_PAYMENTS: Final = """
INSERT INTO payments (payment_id, subscription_id, user_id, amount_cents, currency,
                      card_token, card_brand, card_last4, status, failure_reason,
                      occurred_at, updated_at, refund_id, refund_reason, refunded_cents,
                      refunded_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int4[], %s::text[], %s::text[],
                     %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
                     %s::timestamptz[], %s::text[], %s::text[], %s::int4[],
                     %s::timestamptz[])
ON CONFLICT (payment_id) DO UPDATE SET
    card_token = excluded.card_token, status = excluded.status,
    updated_at = excluded.updated_at, refund_id = excluded.refund_id,
    refund_reason = excluded.refund_reason, refunded_cents = excluded.refunded_cents,
    refunded_at = excluded.refunded_at
"""

# Genres and languages are per-row arrays, which unnest cannot take as a ragged 2-D array;
# they travel as array literals (their values are enum codes and BCP 47 tags, so they
# never need quoting) and are cast per row.
_UPSERT_PREFERENCES: Final = """
INSERT INTO preferences (user_id, genres, languages, subtitles, subtitle_language,
                         autoplay_next_episode, autoplay_previews, maturity_limit, updated_at)
SELECT user_id, genres::text[], languages::text[], subtitles, subtitle_language,
       autoplay_next_episode, autoplay_previews, maturity_limit, updated_at
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bool[], %s::text[], %s::bool[],
            %s::bool[], %s::text[], %s::timestamptz[])
     AS p(user_id, genres, languages, subtitles, subtitle_language, autoplay_next_episode,
          autoplay_previews, maturity_limit, updated_at)
ON CONFLICT (user_id) DO UPDATE SET
    genres = excluded.genres, languages = excluded.languages,
    subtitles = excluded.subtitles, subtitle_language = excluded.subtitle_language,
    autoplay_next_episode = excluded.autoplay_next_episode,
    autoplay_previews = excluded.autoplay_previews,
    maturity_limit = excluded.maturity_limit, updated_at = excluded.updated_at
"""

_DELETE_PREFERENCES: Final = "DELETE FROM preferences WHERE user_id = ANY(%s::text[])"

_UPSERT_RATINGS: Final = """
INSERT INTO ratings (user_id, title_id, stars, review, updated_at, retracted_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int2[], %s::text[], %s::timestamptz[],
                     %s::timestamptz[])
ON CONFLICT (user_id, title_id) DO UPDATE SET
    stars = excluded.stars, review = excluded.review, updated_at = excluded.updated_at,
    retracted_at = excluded.retracted_at
"""

# Erasure reaches rows the batch did not load (older ratings and payments of the user).
_ERASE_REVIEWS: Final = (
    "UPDATE ratings SET review = NULL WHERE user_id = ANY(%s::text[]) AND review IS NOT NULL"
)
_ERASE_CARD_TOKENS: Final = (
    "UPDATE payments SET card_token = NULL"
    " WHERE user_id = ANY(%s::text[]) AND card_token IS NOT NULL"
)

_INSERT_LEDGER: Final = """
INSERT INTO processed_events (consumer, event_id, event_type, status, reason)
SELECT %s, * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])
"""


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
        rules (``memory_accounts``): a deferred event gets no ledger row and no row change."""
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

    def get_user(self, user_id: str) -> User | None:
        return self._read(lambda conn: queries.get_user(conn, user_id))

    def get_user_by_email(self, email: str) -> Credentials | None:
        return self._read(lambda conn: queries.get_user_by_email(conn, email))

    def set_role(self, email: str, role: str) -> str | None:
        """Grant ``role`` to the live account of ``email`` (an operator's act, not an event:
        roles are authorization, which replaying the events must not grant or take away)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return self._read(lambda conn: queries.set_role(conn, email, role))

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        return self._read(lambda conn: queries.get_subscription(conn, subscription_id))

    def get_subscriptions(self, user_id: str) -> list[Subscription]:
        return self._read(lambda conn: queries.get_subscriptions(conn, user_id))

    def get_active_subscription(self, user_id: str) -> Subscription | None:
        return self._read(lambda conn: queries.get_active_subscription(conn, user_id))

    def list_payments(self, user_id: str) -> list[Payment]:
        return self._read(lambda conn: queries.list_payments(conn, user_id))

    def get_preferences(self, user_id: str) -> Preferences | None:
        return self._read(lambda conn: queries.get_preferences(conn, user_id))

    def list_ratings(self, user_id: str) -> list[Rating]:
        return self._read(lambda conn: queries.list_ratings(conn, user_id))

    def get_rating_stats(self, title_id: str) -> RatingStats:
        return self._read(lambda conn: queries.get_rating_stats(conn, title_id))

    def list_rating_stats(self) -> dict[str, RatingStats]:
        return self._read(queries.list_rating_stats)

    def get_processed_event(self, event_id: UUID) -> ProcessedEvent | None:
        return self._read(lambda conn: queries.get_processed_event(conn, event_id))

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        def in_one_snapshot(conn: Connection) -> dict[str, list[dict[str, Any]]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return queries.dump(conn)

        return self._read(in_one_snapshot)


# --- load and flush -----------------------------------------------------------------------


def _load(conn: Connection, state: AccountState, events: Sequence[AnyEvent]) -> None:
    """Load into ``state`` every row the rules may read for ``events`` (see AccountState)."""
    event_ids: list[UUID] = []
    user_ids: set[str] = set()
    emails: set[str] = set()
    subscription_ids: set[str] = set()
    subscribers: set[str] = set()
    payment_ids: set[str] = set()
    preference_users: set[str] = set()
    rating_keys: set[tuple[str, str]] = set()
    for event in events:
        event_ids.append(event.event_id)
        payload = account_payload(event)
        user_ids.add(payload.user_id)
        match payload:
            case ev.UserRegistered() | ev.UserProfileUpdated():
                if payload.email is not None:
                    emails.add(payload.email)
            case ev.UserErased() | ev.PreferencesUpdated():
                preference_users.add(payload.user_id)
            case ev.SubscriptionStarted():
                subscription_ids.add(payload.subscription_id)
                subscribers.add(payload.user_id)
            case (
                ev.SubscriptionPlanChanged() | ev.SubscriptionRenewed() | ev.SubscriptionCanceled()
            ):
                subscription_ids.add(payload.subscription_id)
            case ev.PaymentSucceeded() | ev.PaymentFailed() | ev.PaymentRefunded():
                payment_ids.add(payload.payment_id)
                subscription_ids.add(payload.subscription_id)
            case ev.RatingSubmitted() | ev.RatingRetracted():
                rating_keys.add((payload.user_id, payload.title_id))
            case _:
                assert_never(payload)

    # Queued together in the pipeline: one round trip for all of them.
    pending: list[tuple[psycopg.Cursor[Row], Callable[[Row], None]]] = []

    def query(sql: str, params: Sequence[Any], load: Callable[[Row], None]) -> None:
        pending.append((conn.execute(sql, params), load))

    query(_LOAD_LEDGER, (CONSUMER, _plain(event_ids)), lambda row: state.load_processed(row[0]))
    query(_LOAD_USERS, (_texts(sorted(user_ids)),), lambda row: _load_user(state, row))
    if emails:
        query(_LOAD_USERS_BY_EMAIL, (_texts(sorted(emails)),), lambda row: _load_user(state, row))
    if subscription_ids:
        query(
            _LOAD_SUBSCRIPTIONS,
            (_texts(sorted(subscription_ids)),),
            lambda row: state.load_subscription(subscription_from_row(row)),
        )
    if subscribers:
        query(
            _LOAD_ACTIVE_SUBSCRIPTIONS,
            (_texts(sorted(subscribers)),),
            lambda row: state.load_subscription(subscription_from_row(row)),
        )
    if payment_ids:
        query(
            _LOAD_PAYMENTS,
            (_texts(sorted(payment_ids)),),
            lambda row: state.load_payment(payment_from_row(row), row[15]),
        )
    if preference_users:
        query(
            _LOAD_PREFERENCES,
            (_texts(sorted(preference_users)),),
            lambda row: state.load_preferences(preferences_from_row(row)),
        )
    if rating_keys:
        keys = sorted(rating_keys)
        query(
            _LOAD_RATINGS,
            (_texts([user for user, _ in keys]), _texts([title for _, title in keys])),
            lambda row: _load_rating(state, row),
        )
    for cursor, load in pending:
        for row in cursor.fetchall():
            load(row)


def _load_user(state: AccountState, row: Row) -> None:
    state.load_user(user_from_row(row), row[8])


def _load_rating(state: AccountState, row: Row) -> None:
    if row[2] is None:
        state.load_retraction(row[0], row[1], row[5])
    else:
        state.load_rating(rating_from_row(row))


# --- array parameters -------------------------------------------------------------------
# Every write passes one array per column, as a PostgreSQL array literal built here rather
# than a Python list for psycopg to adapt: adapting a list checks each element against a
# quoting regex and formats datetimes in Python, which measured 5-8 ms per 500-row statement,
# against about 1 ms for these joins (and the server parses both at the same speed).


def _texts(values: Iterable[str | None]) -> str:
    # Every element quoted, so only backslash and double quote need escaping; NULL unquoted.
    return (
        "{"
        + ",".join(
            "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for value in values
        )
        + "}"
    )


def _plain(values: Iterable[int | UUID | None]) -> str:
    # Numbers and UUIDs print without characters that would need quoting.
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


def _times(values: Iterable[datetime | None]) -> str:
    return "{" + ",".join("NULL" if value is None else value.isoformat() for value in values) + "}"


def _bools(values: Iterable[bool]) -> str:
    return "{" + ",".join("t" if value else "f" for value in values) + "}"


def _flush(conn: Connection, state: AccountState) -> None:
    """Queue the writes of everything ``state`` marked dirty, and the ledger rows."""
    if state.dirty_users:
        users = [state.users[user_id] for user_id in state.dirty_users]
        hashes = state.password_hashes
        conn.execute(
            _UPSERT_USERS,
            (
                _texts([u.user_id for u in users]),
                _texts([u.email for u in users]),
                _texts([u.display_name for u in users]),
                _texts([u.country for u in users]),
                _plain([u.birth_year for u in users]),
                _texts([hashes[u.user_id] for u in users]),
                _times([u.created_at for u in users]),
                _times([u.updated_at for u in users]),
                _times([u.erased_at for u in users]),
            ),
        )
    if state.dirty_subscriptions:
        # Cancellations first: a user who cancels and subscribes again in one batch must
        # not have two active rows, even for the instant between two rows of one statement.
        subs = sorted(
            (state.subscriptions[key] for key in state.dirty_subscriptions),
            key=lambda s: s.status is SubscriptionStatus.ACTIVE,
        )
        conn.execute(
            _UPSERT_SUBSCRIPTIONS,
            (
                _texts([s.subscription_id for s in subs]),
                _texts([s.user_id for s in subs]),
                _texts([s.plan.value for s in subs]),
                _texts([s.status.value for s in subs]),
                _times([s.period_start for s in subs]),
                _times([s.period_end for s in subs]),
                _times([s.started_at for s in subs]),
                _times([s.updated_at for s in subs]),
                _times([s.canceled_at for s in subs]),
                _times([s.ends_at for s in subs]),
                _texts([s.cancel_reason for s in subs]),
                _texts([s.last_payment_id for s in subs]),
            ),
        )
    if state.dirty_payments:
        pays = [state.payments[key] for key in state.dirty_payments]
        tokens = state.card_tokens
        conn.execute(
            _UPSERT_PAYMENTS,
            (
                _texts([p.payment_id for p in pays]),
                _texts([p.subscription_id for p in pays]),
                _texts([p.user_id for p in pays]),
                _plain([p.amount_cents for p in pays]),
                _texts([p.currency for p in pays]),
                _texts([tokens[p.payment_id] for p in pays]),
                _texts([p.card_brand for p in pays]),
                _texts([p.card_last4 for p in pays]),
                _texts([p.status.value for p in pays]),
                _texts([p.failure_reason for p in pays]),
                _times([p.occurred_at for p in pays]),
                _times([p.updated_at for p in pays]),
                _texts([p.refund_id for p in pays]),
                _texts([p.refund_reason for p in pays]),
                _plain([p.refunded_cents for p in pays]),
                _times([p.refunded_at for p in pays]),
            ),
        )
    if state.dirty_preferences:
        prefs = [
            state.preferences[key] for key in state.dirty_preferences if key in state.preferences
        ]
        deleted = [key for key in state.dirty_preferences if key not in state.preferences]
        if prefs:
            conn.execute(
                _UPSERT_PREFERENCES,
                (
                    _texts([p.user_id for p in prefs]),
                    # Per-row arrays travel as quoted elements holding an array literal;
                    # genre codes and language tags never need quoting inside it.
                    _texts(["{" + ",".join(p.genres) + "}" for p in prefs]),
                    _texts(["{" + ",".join(p.languages) + "}" for p in prefs]),
                    _bools([p.subtitles for p in prefs]),
                    _texts([p.subtitle_language for p in prefs]),
                    _bools([p.autoplay_next_episode for p in prefs]),
                    _bools([p.autoplay_previews for p in prefs]),
                    _texts([p.maturity_limit for p in prefs]),
                    _times([p.updated_at for p in prefs]),
                ),
            )
        if deleted:
            conn.execute(_DELETE_PREFERENCES, (_texts(deleted),))
    if state.dirty_ratings:
        keys = list(state.dirty_ratings)
        current = [state.ratings.get(key) for key in keys]
        retracted = [state.retractions.get(key) for key in keys]
        conn.execute(
            _UPSERT_RATINGS,
            (
                _texts([user_id for user_id, _ in keys]),
                _texts([title_id for _, title_id in keys]),
                _plain([None if r is None else r.stars for r in current]),
                _texts([None if r is None else r.review for r in current]),
                _times(
                    [
                        r.rated_at if r is not None else at
                        for r, at in zip(current, retracted, strict=True)
                    ]
                ),
                _times(retracted),
            ),
        )
    if state.erased_users:
        erased = _texts(state.erased_users)
        conn.execute(_ERASE_REVIEWS, (erased,))
        conn.execute(_ERASE_CARD_TOKENS, (erased,))
    if state.new_processed:
        entries = state.new_processed
        conn.execute(
            _INSERT_LEDGER,
            (
                CONSUMER,
                _plain([e.event_id for e in entries]),
                _texts([e.event_type for e in entries]),
                _texts([e.status for e in entries]),
                _texts([e.reason for e in entries]),
            ),
        )


__all__ = ["PostgresAccountStore"]
