"""The PostgreSQL schema of the accounts sink, as SQLAlchemy Core tables.

This is the current shape; the migrations under ``migrations/versions`` are how a database
gets there, and a test checks that migrating an empty database yields exactly this metadata.

Conventions:

* ids are the contract's opaque ids (``varchar(64)``), not database sequences: the events
  carry them, and replay must produce the same rows;
* every time column is ``timestamptz`` and holds event time (``occurred_at``), which is
  what the staleness guards compare; only the ledger's ``processed_at`` is wall-clock;
* closed vocabularies are ``text`` with a ``CHECK`` rather than PostgreSQL enums, because
  adding a value to a CHECK is a plain migration while altering an enum type is not
  transactional in older servers and cannot be undone;
* ``ratings.title_id`` has no foreign key: titles live in MongoDB.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    CHAR,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from polystream.domain.events import CardBrand, PlanCode

# Deterministic constraint names: the store recognises some violations by name, and
# migrations can refer to them.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(64)


def _tz() -> DateTime:
    return DateTime(timezone=True)


def _one_of(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


PLAN_CODES: Final = [plan.value for plan in PlanCode]
CARD_BRANDS: Final = [brand.value for brand in CardBrand]

plans = Table(
    "plans",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("max_streams", SmallInteger, nullable=False),
    Column("max_resolution", Text, nullable=False),
    CheckConstraint("price_cents > 0", name="price_positive"),
    CheckConstraint("max_streams > 0", name="max_streams_positive"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", ID, primary_key=True),
    # NULL once erased, which also frees the address for a new account.
    Column("email", String(254)),
    Column("display_name", String(80)),
    Column("country", CHAR(2)),
    Column("birth_year", SmallInteger),
    Column("password_hash", String(512)),
    Column("created_at", _tz(), nullable=False),
    Column("updated_at", _tz(), nullable=False),
    Column("erased_at", _tz()),
    # Authorization, not event-sourced: granted with `polystream users promote`.
    Column("role", String(16), nullable=False, server_default=text("'user'")),
    UniqueConstraint("email"),
    CheckConstraint("role IN ('user', 'operator')", name="role"),
    CheckConstraint("email = lower(email)", name="email_lowercase"),
    # Only argon2id hashes, in PHC form; a plain password cannot be stored by mistake.
    CheckConstraint("password_hash ~ '^[$]argon2id[$]'", name="password_hash_argon2id"),
    # A live account is complete; an erased one holds no personal data at all.
    CheckConstraint(
        "(erased_at IS NULL AND email IS NOT NULL AND display_name IS NOT NULL"
        " AND country IS NOT NULL AND birth_year IS NOT NULL AND password_hash IS NOT NULL)"
        " OR (erased_at IS NOT NULL AND email IS NULL AND display_name IS NULL"
        " AND country IS NULL AND birth_year IS NULL AND password_hash IS NULL)",
        name="erasure_complete",
    ),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.user_id"), nullable=False),
    Column("plan", String(32), ForeignKey("plans.code"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("period_start", _tz(), nullable=False),
    Column("period_end", _tz(), nullable=False),
    Column("started_at", _tz(), nullable=False),
    Column("updated_at", _tz(), nullable=False),
    Column("canceled_at", _tz()),
    Column("ends_at", _tz()),
    Column("cancel_reason", String(32)),
    # No foreign key: the renewal may be recorded before its payment arrives.
    Column("last_payment_id", ID),
    CheckConstraint(_one_of("status", ["active", "canceled"]), name="status"),
    CheckConstraint("period_end > period_start", name="period_forward"),
    CheckConstraint("(status = 'canceled') = (canceled_at IS NOT NULL)", name="canceled_has_time"),
    Index("ix_subscriptions_user_id", "user_id"),
    # The "one active subscription per user" rule, enforced whatever the writer.
    Index(
        "uq_subscriptions_one_active_per_user",
        "user_id",
        unique=True,
        postgresql_where=text("status = 'active'"),
    ),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", ID, primary_key=True),
    Column("subscription_id", ID, ForeignKey("subscriptions.subscription_id"), nullable=False),
    Column("user_id", ID, ForeignKey("users.user_id"), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    # The processor's token, brand and last four digits are all that is ever stored; the
    # token is dropped when the user is erased.
    Column("card_token", String(68)),
    Column("card_brand", String(16), nullable=False),
    Column("card_last4", CHAR(4), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_reason", String(32)),
    Column("occurred_at", _tz(), nullable=False),
    Column("updated_at", _tz(), nullable=False),
    Column("refund_id", ID),
    Column("refund_reason", String(32)),
    Column("refunded_cents", Integer),
    Column("refunded_at", _tz()),
    CheckConstraint("amount_cents > 0", name="amount_positive"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
    CheckConstraint("card_token ~ '^tok_[A-Za-z0-9]{8,64}$'", name="card_token_shape"),
    CheckConstraint(_one_of("card_brand", CARD_BRANDS), name="card_brand"),
    CheckConstraint("card_last4 ~ '^[0-9]{4}$'", name="card_last4_digits"),
    CheckConstraint(_one_of("status", ["succeeded", "failed", "refunded"]), name="status"),
    CheckConstraint(
        "(status = 'failed') = (failure_reason IS NOT NULL)", name="failure_has_reason"
    ),
    CheckConstraint(
        "(status = 'refunded') = (refund_id IS NOT NULL AND refunded_at IS NOT NULL"
        " AND refunded_cents IS NOT NULL)",
        name="refund_complete",
    ),
    CheckConstraint(
        "refunded_cents IS NULL OR (refunded_cents > 0 AND refunded_cents <= amount_cents)",
        name="refund_within_amount",
    ),
    Index("ix_payments_user_id_occurred_at", "user_id", "occurred_at"),
    Index("ix_payments_subscription_id", "subscription_id"),
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", ID, ForeignKey("users.user_id"), primary_key=True),
    Column("genres", ARRAY(Text), nullable=False),
    Column("languages", ARRAY(Text), nullable=False),
    Column("subtitles", Boolean, nullable=False),
    Column("subtitle_language", String(16)),
    Column("autoplay_next_episode", Boolean, nullable=False),
    Column("autoplay_previews", Boolean, nullable=False),
    Column("maturity_limit", String(8), nullable=False),
    # Event time of the snapshot: an older snapshot never replaces a newer one.
    Column("updated_at", _tz(), nullable=False),
    CheckConstraint("cardinality(languages) > 0", name="some_languages"),
)

ratings = Table(
    "ratings",
    metadata,
    Column("user_id", ID, ForeignKey("users.user_id"), nullable=False),
    Column("title_id", ID, nullable=False),
    # NULL stars = retracted: the row stays as a tombstone carrying the retraction's event
    # time, so a late copy of the earlier submission cannot resurrect the rating.
    Column("stars", SmallInteger),
    Column("review", Text),
    Column("updated_at", _tz(), nullable=False),
    Column("retracted_at", _tz()),
    PrimaryKeyConstraint("user_id", "title_id"),
    CheckConstraint("stars BETWEEN 1 AND 5", name="stars_range"),
    CheckConstraint("(stars IS NULL) = (retracted_at IS NOT NULL)", name="retracted_no_stars"),
    CheckConstraint("review IS NULL OR stars IS NOT NULL", name="review_needs_stars"),
    CheckConstraint("char_length(review) <= 2000", name="review_length"),
    # Per-title statistics read only current ratings; INCLUDE makes them index-only scans.
    Index(
        "ix_ratings_title_id_current",
        "title_id",
        postgresql_include=["stars"],
        postgresql_where=text("stars IS NOT NULL"),
    ),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(32), nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("processed_at", _tz(), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("consumer", "event_id"),
    CheckConstraint(_one_of("status", ["stored", "stale", "rejected"]), name="status"),
)

# Per-user keys sealing the personal fields of the data topics (polystream.shred). Not event
# data: a producer creates the row before the user's first event is published (so no foreign
# key to users); the PostgreSQL sink's consumer destroys the key on erasure and keeps the row
# (key NULL) so that no key is ever issued for that user again.
data_keys = Table(
    "data_keys",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("data_key", LargeBinary),
    Column("created_at", _tz(), nullable=False, server_default=text("now()")),
    Column("erased_at", _tz()),
    CheckConstraint("(data_key IS NULL) = (erased_at IS NOT NULL)", name="key_or_erased"),
    CheckConstraint("data_key IS NULL OR octet_length(data_key) = 32", name="key_length"),
)

#: Tables holding data written by events (not ``plans``), parents first.
DATA_TABLES: Final = (users, subscriptions, payments, preferences, ratings, processed_events)

__all__ = [
    "DATA_TABLES",
    "NAMING_CONVENTION",
    "data_keys",
    "metadata",
    "payments",
    "plans",
    "preferences",
    "processed_events",
    "ratings",
    "subscriptions",
    "users",
]
