"""The SQL with which ``PostgresAccountStore`` loads and writes one batch, and its parameters.

Loads lock the rows a batch can touch; writes are one set-based statement per table, each
column travelling as one array parameter (``unnest``). The read side's SQL is in
:mod:`~polystream.sinks.postgres.queries`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from polystream.sinks.postgres.queries import (
    PAYMENT_COLUMNS,
    PREFERENCES_COLUMNS,
    RATING_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    USER_COLUMNS,
)

# --- load -----------------------------------------------------------------------------
# ORDER BY before FOR UPDATE: two workers locking overlapping rows in the same order cannot
# deadlock each other.

LOAD_LEDGER: Final = (
    "SELECT event_id FROM processed_events WHERE consumer = %s AND event_id = ANY(%s::uuid[])"
)
LOAD_USERS: Final = (
    f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ANY(%s::text[]) ORDER BY user_id FOR UPDATE"
)
LOAD_USERS_BY_EMAIL: Final = (
    f"SELECT {USER_COLUMNS} FROM users WHERE email = ANY(%s::text[]) ORDER BY user_id FOR UPDATE"
)
LOAD_SUBSCRIPTIONS: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = ANY(%s::text[])"
    " ORDER BY subscription_id FOR UPDATE"
)
LOAD_ACTIVE_SUBSCRIPTIONS: Final = (
    f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
    " WHERE user_id = ANY(%s::text[]) AND status = 'active' ORDER BY subscription_id FOR UPDATE"
)
LOAD_PAYMENTS: Final = (
    f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = ANY(%s::text[])"
    " ORDER BY payment_id FOR UPDATE"
)
LOAD_PREFERENCES: Final = (
    f"SELECT {PREFERENCES_COLUMNS} FROM preferences WHERE user_id = ANY(%s::text[])"
    " ORDER BY user_id FOR UPDATE"
)
LOAD_RATINGS: Final = (
    "SELECT r.user_id, r.title_id, r.stars, r.review, r.updated_at, r.retracted_at"
    " FROM ratings r JOIN unnest(%s::text[], %s::text[]) AS k(user_id, title_id)"
    " ON r.user_id = k.user_id AND r.title_id = k.title_id"
    " ORDER BY r.user_id, r.title_id FOR UPDATE OF r"
)
assert RATING_COLUMNS == "user_id, title_id, stars, review, updated_at, retracted_at"

# --- array parameters -------------------------------------------------------------------
# Every write passes one array per column, as a PostgreSQL array literal built here rather
# than a Python list for psycopg to adapt: adapting a list checks each element against a
# quoting regex and formats datetimes in Python, which measured 5-8 ms per 500-row statement,
# against about 1 ms for these joins (and the server parses both at the same speed).


def texts(values: Iterable[str | None]) -> str:
    # Every element quoted, so only backslash and double quote need escaping; NULL unquoted.
    return (
        "{"
        + ",".join(
            "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for value in values
        )
        + "}"
    )


def plain(values: Iterable[int | UUID | None]) -> str:
    # Numbers and UUIDs print without characters that would need quoting.
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


def times(values: Iterable[datetime | None]) -> str:
    return "{" + ",".join("NULL" if value is None else value.isoformat() for value in values) + "}"


def bools(values: Iterable[bool]) -> str:
    return "{" + ",".join("t" if value else "f" for value in values) + "}"


def text_arrays(values: Iterable[Sequence[str]]) -> str:
    # Per-row arrays travel as quoted elements holding an array literal; their values (genre
    # codes, BCP 47 language tags) never need quoting inside it.
    return texts("{" + ",".join(value) + "}" for value in values)


_ENCODERS: Final[Mapping[str, Callable[[Iterable[Any]], str]]] = {
    "text": texts,
    "int2": plain,
    "int4": plain,
    "bool": bools,
    "timestamptz": times,
    "text[]": text_arrays,
}

# --- write ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upsert:
    """One set-based upsert of whole rows, written in the order given."""

    sql: str
    encoders: tuple[Callable[[Iterable[Any]], str], ...]

    def params(self, rows: Sequence[Sequence[Any]]) -> tuple[str, ...]:
        """One array literal per column of ``rows`` (tuples in the statement's column order)."""
        columns = zip(*rows, strict=True)
        return tuple(encode(column) for encode, column in zip(self.encoders, columns, strict=True))


def upsert(table: str, columns: str, *, key: str, fixed: str = "") -> Upsert:
    """The upsert of ``columns`` (``"name type, ..."``) into ``table``; on a conflict on
    ``key`` it updates every column but the key and the ``fixed`` ones (never changed).

    ``WITH ORDINALITY ... ORDER BY``: rows are written in the order given, which the
    one-active-subscription index and the email constraint need (see the store's flush).
    Genres and languages are per-row arrays, which unnest cannot take as a ragged 2-D array:
    they travel as array literals in a text array and are cast per row.
    """
    pairs = [column.split() for column in columns.split(",")]
    names = [name for name, _ in pairs]
    selected = [f"{name}::{kind}" if kind.endswith("[]") else name for name, kind in pairs]
    arrays = [f"%s::{kind.removesuffix('[]')}[]" for _, kind in pairs]
    unchanged = {*key.replace(",", " ").split(), *fixed.split()}
    updates = [f"{name} = excluded.{name}" for name in names if name not in unchanged]
    sql = (
        f"INSERT INTO {table} ({', '.join(names)})"
        f" SELECT {', '.join(selected)}"
        f" FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS r({', '.join(names)}, n)"
        f" ORDER BY n ON CONFLICT ({key}) DO UPDATE SET {', '.join(updates)}"
    )
    return Upsert(sql, tuple(_ENCODERS[kind] for _, kind in pairs))


# Columns in the order of the records' fields (then the secrets the records leave out), so a
# row is the record's fields plus those.
UPSERT_USERS: Final = upsert(
    "users",
    "user_id text, email text, display_name text, country text, birth_year int2,"
    " created_at timestamptz, updated_at timestamptz, erased_at timestamptz, password_hash text",
    key="user_id",
    fixed="created_at",
)
UPSERT_SUBSCRIPTIONS: Final = upsert(
    "subscriptions",
    "subscription_id text, user_id text, plan text, status text, period_start timestamptz,"
    " period_end timestamptz, started_at timestamptz, updated_at timestamptz,"
    " canceled_at timestamptz, ends_at timestamptz, cancel_reason text, last_payment_id text",
    key="subscription_id",
    fixed="user_id started_at",
)
UPSERT_PAYMENTS: Final = upsert(
    "payments",
    "payment_id text, subscription_id text, user_id text, amount_cents int4, currency text,"
    " card_brand text, card_last4 text, status text, failure_reason text,"
    " occurred_at timestamptz, updated_at timestamptz, refund_id text, refund_reason text,"
    " refunded_cents int4, refunded_at timestamptz, card_token text",
    key="payment_id",
    fixed="subscription_id user_id amount_cents currency card_brand card_last4"
    " failure_reason occurred_at",
)
UPSERT_PREFERENCES: Final = upsert(
    "preferences",
    "user_id text, genres text[], languages text[], subtitles bool, subtitle_language text,"
    " autoplay_next_episode bool, autoplay_previews bool, maturity_limit text,"
    " updated_at timestamptz",
    key="user_id",
)
UPSERT_RATINGS: Final = upsert(
    "ratings",
    "user_id text, title_id text, stars int2, review text, updated_at timestamptz,"
    " retracted_at timestamptz",
    key="user_id, title_id",
)

DELETE_PREFERENCES: Final = "DELETE FROM preferences WHERE user_id = ANY(%s::text[])"

# Erasure reaches rows the batch did not load (older ratings and payments of the user).
ERASE_REVIEWS: Final = (
    "UPDATE ratings SET review = NULL WHERE user_id = ANY(%s::text[]) AND review IS NOT NULL"
)
ERASE_CARD_TOKENS: Final = (
    "UPDATE payments SET card_token = NULL"
    " WHERE user_id = ANY(%s::text[]) AND card_token IS NOT NULL"
)

INSERT_LEDGER: Final = """
INSERT INTO processed_events (consumer, event_id, event_type, status, reason)
SELECT %s, * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])
"""
