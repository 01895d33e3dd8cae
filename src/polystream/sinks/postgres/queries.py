"""The read side of the accounts schema: SQL, and rows turned into records.

Functions take an open psycopg connection so that any owner of one (the store, an API's pool,
``verify``) can use them; each runs one statement. The column lists here are also what the
store loads before applying a batch, so a record read by the API and a record the rules
reason about are built the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from uuid import UUID

import psycopg

from polystream.domain.accounts import CONSUMER
from polystream.domain.accounts_rows import canonical_dump
from polystream.domain.events import PlanCode
from polystream.domain.reads import (
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

Row = tuple[Any, ...]
R = TypeVar("R")
Connection = psycopg.Connection[Row]

USER_COLUMNS: Final = (
    "user_id, email, display_name, country, birth_year, created_at, updated_at, erased_at,"
    " password_hash"
)
SUBSCRIPTION_COLUMNS: Final = (
    "subscription_id, user_id, plan, status, period_start, period_end, started_at, updated_at,"
    " canceled_at, ends_at, cancel_reason, last_payment_id"
)
PAYMENT_COLUMNS: Final = (
    "payment_id, subscription_id, user_id, amount_cents, currency, card_brand, card_last4,"
    " status, failure_reason, occurred_at, updated_at, refund_id, refund_reason,"
    " refunded_cents, refunded_at, card_token"
)
PREFERENCES_COLUMNS: Final = (
    "user_id, genres, languages, subtitles, subtitle_language, autoplay_next_episode,"
    " autoplay_previews, maturity_limit, updated_at"
)
RATING_COLUMNS: Final = "user_id, title_id, stars, review, updated_at, retracted_at"


def user_from_row(row: Row) -> User:
    """A ``USER_COLUMNS`` row; the trailing password hash is not part of the record."""
    return User(*row[:8])


def subscription_from_row(row: Row) -> Subscription:
    return Subscription(
        row[0],
        row[1],
        PlanCode(row[2]),
        SubscriptionStatus(row[3]),
        *row[4:],
    )


def payment_from_row(row: Row) -> Payment:
    """A ``PAYMENT_COLUMNS`` row; the trailing card token is not part of the record."""
    fields = list(row[:15])
    fields[7] = PaymentStatus(fields[7])
    return Payment(*fields)


def preferences_from_row(row: Row) -> Preferences:
    return Preferences(row[0], tuple(row[1]), tuple(row[2]), *row[3:])


def rating_from_row(row: Row) -> Rating:
    """A current rating (``stars`` not NULL) from a ``RATING_COLUMNS`` row."""
    return Rating(row[0], row[1], row[2], row[3], row[4])


# One statement per read of one key; the column lists are the records' (see *_from_row).
_USER: Final = f"SELECT {USER_COLUMNS} FROM users WHERE user_id = %s"
_SUBSCRIPTION: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = %s"
)
_SUBSCRIPTIONS_OF_USER: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = %s"
    " ORDER BY started_at, subscription_id"
)
_ACTIVE_SUBSCRIPTION: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = %s AND status = 'active'"
)
_PAYMENTS_OF_USER: Final = (
    f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = %s ORDER BY occurred_at, payment_id"
)
_PREFERENCES: Final = f"SELECT {PREFERENCES_COLUMNS} FROM preferences WHERE user_id = %s"
_RATINGS_OF_USER: Final = (
    f"SELECT {RATING_COLUMNS} FROM ratings WHERE user_id = %s AND stars IS NOT NULL"
    " ORDER BY title_id"
)


def _one(conn: Connection, sql: str, params: Sequence[Any]) -> Row | None:
    return conn.execute(sql, params).fetchone()


def _record(conn: Connection, sql: str, key: object, from_row: Callable[[Row], R]) -> R | None:
    row = conn.execute(sql, (key,)).fetchone()
    return None if row is None else from_row(row)


def _records(conn: Connection, sql: str, key: object, from_row: Callable[[Row], R]) -> list[R]:
    return [from_row(row) for row in conn.execute(sql, (key,)).fetchall()]


def get_user(conn: Connection, user_id: str) -> User | None:
    return _record(conn, _USER, user_id, user_from_row)


def get_user_by_email(conn: Connection, email: str) -> Credentials | None:
    # Erased accounts have no email, so they can never be found (nor logged into).
    row = _one(
        conn,
        "SELECT user_id, password_hash, role FROM users WHERE email = %s",
        (email.strip().lower(),),
    )
    return None if row is None or row[1] is None else Credentials(row[0], row[1], row[2])


def set_role(conn: Connection, email: str, role: str) -> str | None:
    """Grant ``role`` to the live account of ``email``; its user id, or None if none."""
    row = _one(
        conn,
        "UPDATE users SET role = %s WHERE email = %s RETURNING user_id",
        (role, email.strip().lower()),
    )
    return None if row is None else str(row[0])


def get_subscription(conn: Connection, subscription_id: str) -> Subscription | None:
    return _record(conn, _SUBSCRIPTION, subscription_id, subscription_from_row)


def get_subscriptions(conn: Connection, user_id: str) -> list[Subscription]:
    return _records(conn, _SUBSCRIPTIONS_OF_USER, user_id, subscription_from_row)


def get_active_subscription(conn: Connection, user_id: str) -> Subscription | None:
    return _record(conn, _ACTIVE_SUBSCRIPTION, user_id, subscription_from_row)


def list_payments(conn: Connection, user_id: str) -> list[Payment]:
    return _records(conn, _PAYMENTS_OF_USER, user_id, payment_from_row)


def get_preferences(conn: Connection, user_id: str) -> Preferences | None:
    return _record(conn, _PREFERENCES, user_id, preferences_from_row)


def list_ratings(conn: Connection, user_id: str) -> list[Rating]:
    return _records(conn, _RATINGS_OF_USER, user_id, rating_from_row)


def get_rating_stats(conn: Connection, title_id: str) -> RatingStats:
    row = _one(
        conn,
        "SELECT count(*), coalesce(sum(stars), 0) FROM ratings"
        " WHERE title_id = %s AND stars IS NOT NULL",
        (title_id,),
    )
    assert row is not None  # an aggregate always returns one row
    return RatingStats(row[0], row[1])


def list_rating_stats(conn: Connection) -> dict[str, RatingStats]:
    rows = conn.execute(
        "SELECT title_id, count(*), sum(stars) FROM ratings WHERE stars IS NOT NULL"
        " GROUP BY title_id"
    ).fetchall()
    return {title_id: RatingStats(count, total) for title_id, count, total in rows}


def get_processed_event(conn: Connection, event_id: UUID) -> ProcessedEvent | None:
    row = _one(
        conn,
        "SELECT event_id, event_type, status, reason FROM processed_events"
        " WHERE consumer = %s AND event_id = %s",
        (CONSUMER, event_id),
    )
    return None if row is None else ProcessedEvent(*row)


_DUMP_COLUMNS: Final = {
    "users": USER_COLUMNS,
    "subscriptions": SUBSCRIPTION_COLUMNS,
    "payments": PAYMENT_COLUMNS,
    "preferences": PREFERENCES_COLUMNS,
    "ratings": RATING_COLUMNS,
    # Not processed_at: it is wall-clock time, the one thing a replay legitimately changes.
    "processed_events": "consumer, event_id, event_type, status, reason",
}


def dump(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of the data tables in the shape of ``InMemoryAccountStore.dump``."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, columns in _DUMP_COLUMNS.items():
        cursor = conn.execute(f"SELECT {columns} FROM {table}")
        names = [column.name for column in cursor.description or ()]
        tables[table] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return canonical_dump(tables)


__all__ = [
    "PAYMENT_COLUMNS",
    "PREFERENCES_COLUMNS",
    "RATING_COLUMNS",
    "SUBSCRIPTION_COLUMNS",
    "USER_COLUMNS",
    "dump",
    "get_active_subscription",
    "get_preferences",
    "get_processed_event",
    "get_rating_stats",
    "get_subscription",
    "get_subscriptions",
    "get_user",
    "get_user_by_email",
    "list_payments",
    "list_rating_stats",
    "list_ratings",
    "payment_from_row",
    "preferences_from_row",
    "rating_from_row",
    "subscription_from_row",
    "user_from_row",
]
