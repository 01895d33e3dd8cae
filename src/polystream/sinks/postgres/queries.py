"""The read side of the accounts schema: SQL, and rows turned into records.

Functions take an open psycopg connection so that any owner of one (the store, an API's pool,
``verify``) can use them; each runs one statement. The column lists here are also what the
store loads before applying a batch, so a record read by the API and a record the rules
reason about are built the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import psycopg

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
from polystream.sinks.memory_accounts import CONSUMER, canonical_dump

Row = tuple[Any, ...]
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
    return Payment(
        payment_id=row[0],
        subscription_id=row[1],
        user_id=row[2],
        amount_cents=row[3],
        currency=row[4],
        card_brand=row[5],
        card_last4=row[6],
        status=PaymentStatus(row[7]),
        failure_reason=row[8],
        occurred_at=row[9],
        updated_at=row[10],
        refund_id=row[11],
        refund_reason=row[12],
        refunded_cents=row[13],
        refunded_at=row[14],
    )


def preferences_from_row(row: Row) -> Preferences:
    return Preferences(row[0], tuple(row[1]), tuple(row[2]), *row[3:])


def rating_from_row(row: Row) -> Rating:
    """A current rating (``stars`` not NULL) from a ``RATING_COLUMNS`` row."""
    return Rating(row[0], row[1], row[2], row[3], row[4])


def _one(conn: Connection, sql: str, params: Sequence[Any]) -> Row | None:
    return conn.execute(sql, params).fetchone()


def get_user(conn: Connection, user_id: str) -> User | None:
    row = _one(conn, f"SELECT {USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,))
    return None if row is None else user_from_row(row)


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
    row = _one(
        conn,
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = %s",
        (subscription_id,),
    )
    return None if row is None else subscription_from_row(row)


def get_subscriptions(conn: Connection, user_id: str) -> list[Subscription]:
    rows = conn.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = %s"
        " ORDER BY started_at, subscription_id",
        (user_id,),
    ).fetchall()
    return [subscription_from_row(row) for row in rows]


def get_active_subscription(conn: Connection, user_id: str) -> Subscription | None:
    row = _one(
        conn,
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
        " WHERE user_id = %s AND status = 'active'",
        (user_id,),
    )
    return None if row is None else subscription_from_row(row)


def list_payments(conn: Connection, user_id: str) -> list[Payment]:
    rows = conn.execute(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = %s"
        " ORDER BY occurred_at, payment_id",
        (user_id,),
    ).fetchall()
    return [payment_from_row(row) for row in rows]


def get_preferences(conn: Connection, user_id: str) -> Preferences | None:
    row = _one(
        conn, f"SELECT {PREFERENCES_COLUMNS} FROM preferences WHERE user_id = %s", (user_id,)
    )
    return None if row is None else preferences_from_row(row)


def list_ratings(conn: Connection, user_id: str) -> list[Rating]:
    rows = conn.execute(
        f"SELECT {RATING_COLUMNS} FROM ratings WHERE user_id = %s AND stars IS NOT NULL"
        " ORDER BY title_id",
        (user_id,),
    ).fetchall()
    return [rating_from_row(row) for row in rows]


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
