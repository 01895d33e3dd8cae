"""Accounts schema: users, plans, subscriptions, payments, preferences, ratings, ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written out in full rather than derived from ``schema.py``: a migration is a snapshot of the
schema at its revision, and must not change when the current tables do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from polystream.domain.events import PLANS

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("max_streams", sa.SmallInteger(), nullable=False),
        sa.Column("max_resolution", sa.Text(), nullable=False),
        sa.CheckConstraint("max_streams > 0", name=op.f("ck_plans_max_streams_positive")),
        sa.CheckConstraint("price_cents > 0", name=op.f("ck_plans_price_positive")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_plans")),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('stored', 'stale', 'rejected')",
            name=op.f("ck_processed_events_status"),
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("display_name", sa.String(length=80), nullable=True),
        sa.Column("country", sa.CHAR(length=2), nullable=True),
        sa.Column("birth_year", sa.SmallInteger(), nullable=True),
        sa.Column("password_hash", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "password_hash ~ '^[$]argon2id[$]'", name=op.f("ck_users_password_hash_argon2id")
        ),
        sa.CheckConstraint(
            "(erased_at IS NULL AND email IS NOT NULL AND display_name IS NOT NULL"
            " AND country IS NOT NULL AND birth_year IS NOT NULL AND password_hash IS NOT NULL)"
            " OR (erased_at IS NOT NULL AND email IS NULL AND display_name IS NULL"
            " AND country IS NULL AND birth_year IS NULL AND password_hash IS NULL)",
            name=op.f("ck_users_erasure_complete"),
        ),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_users_email_lowercase")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("genres", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("languages", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("subtitles", sa.Boolean(), nullable=False),
        sa.Column("subtitle_language", sa.String(length=16), nullable=True),
        sa.Column("autoplay_next_episode", sa.Boolean(), nullable=False),
        sa.Column("autoplay_previews", sa.Boolean(), nullable=False),
        sa.Column("maturity_limit", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "cardinality(languages) > 0", name=op.f("ck_preferences_some_languages")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_preferences")),
    )
    op.create_table(
        "ratings",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("title_id", sa.String(length=64), nullable=False),
        sa.Column("stars", sa.SmallInteger(), nullable=True),
        sa.Column("review", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(stars IS NULL) = (retracted_at IS NOT NULL)",
            name=op.f("ck_ratings_retracted_no_stars"),
        ),
        sa.CheckConstraint("char_length(review) <= 2000", name=op.f("ck_ratings_review_length")),
        sa.CheckConstraint(
            "review IS NULL OR stars IS NOT NULL", name=op.f("ck_ratings_review_needs_stars")
        ),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name=op.f("ck_ratings_stars_range")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_ratings_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "title_id", name=op.f("pk_ratings")),
    )
    op.create_index(
        "ix_ratings_title_id_current",
        "ratings",
        ["title_id"],
        unique=False,
        postgresql_include=["stars"],
        postgresql_where=sa.text("stars IS NOT NULL"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=32), nullable=True),
        sa.Column("last_payment_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "(status = 'canceled') = (canceled_at IS NOT NULL)",
            name=op.f("ck_subscriptions_canceled_has_time"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'canceled')", name=op.f("ck_subscriptions_status")
        ),
        sa.CheckConstraint(
            "period_end > period_start", name=op.f("ck_subscriptions_period_forward")
        ),
        sa.ForeignKeyConstraint(["plan"], ["plans.code"], name=op.f("fk_subscriptions_plan_plans")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_user_id", "subscriptions", ["user_id"], unique=False)
    op.create_index(
        "uq_subscriptions_one_active_per_user",
        "subscriptions",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("card_token", sa.String(length=68), nullable=True),
        sa.Column("card_brand", sa.String(length=16), nullable=False),
        sa.Column("card_last4", sa.CHAR(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=32), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refund_id", sa.String(length=64), nullable=True),
        sa.Column("refund_reason", sa.String(length=32), nullable=True),
        sa.Column("refunded_cents", sa.Integer(), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'failed') = (failure_reason IS NOT NULL)",
            name=op.f("ck_payments_failure_has_reason"),
        ),
        sa.CheckConstraint(
            "(status = 'refunded') = (refund_id IS NOT NULL AND refunded_at IS NOT NULL"
            " AND refunded_cents IS NOT NULL)",
            name=op.f("ck_payments_refund_complete"),
        ),
        sa.CheckConstraint(
            "card_brand IN ('visa', 'mastercard', 'amex', 'discover', 'jcb', 'diners',"
            " 'unionpay', 'maestro')",
            name=op.f("ck_payments_card_brand"),
        ),
        sa.CheckConstraint("card_last4 ~ '^[0-9]{4}$'", name=op.f("ck_payments_card_last4_digits")),
        sa.CheckConstraint(
            "card_token ~ '^tok_[A-Za-z0-9]{8,64}$'", name=op.f("ck_payments_card_token_shape")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_payments_currency_code")),
        sa.CheckConstraint(
            "status IN ('succeeded', 'failed', 'refunded')", name=op.f("ck_payments_status")
        ),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "refunded_cents IS NULL OR (refunded_cents > 0 AND refunded_cents <= amount_cents)",
            name=op.f("ck_payments_refund_within_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.subscription_id"],
            name=op.f("fk_payments_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_payments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_payments")),
    )
    op.create_index("ix_payments_subscription_id", "payments", ["subscription_id"], unique=False)
    op.create_index(
        "ix_payments_user_id_occurred_at", "payments", ["user_id", "occurred_at"], unique=False
    )
    _seed_plans()


def downgrade() -> None:
    op.drop_index("ix_payments_user_id_occurred_at", table_name="payments")
    op.drop_index("ix_payments_subscription_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index(
        "uq_subscriptions_one_active_per_user",
        table_name="subscriptions",
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_index("ix_subscriptions_user_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(
        "ix_ratings_title_id_current",
        table_name="ratings",
        postgresql_include=["stars"],
        postgresql_where=sa.text("stars IS NOT NULL"),
    )
    op.drop_table("ratings")
    op.drop_table("preferences")
    op.drop_table("users")
    op.drop_table("processed_events")
    op.drop_table("plans")


def _seed_plans() -> None:
    # The catalogue is part of the contract (events name plans by code); a later price
    # change is a new migration that updates these rows, never an edit of this one.
    plans = sa.table(
        "plans",
        sa.column("code", sa.String),
        sa.column("name", sa.Text),
        sa.column("price_cents", sa.Integer),
        sa.column("currency", sa.CHAR),
        sa.column("max_streams", sa.SmallInteger),
        sa.column("max_resolution", sa.Text),
    )
    op.bulk_insert(
        plans,
        [
            {
                "code": plan.code.value,
                "name": plan.name,
                "price_cents": plan.price_cents,
                "currency": plan.currency,
                "max_streams": plan.max_streams,
                "max_resolution": plan.max_resolution,
            }
            for plan in PLANS.values()
        ],
    )
