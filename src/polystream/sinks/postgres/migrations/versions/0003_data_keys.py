"""Per-user data keys for crypto-shredding the personal fields of the data topics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

A row per user who ever had a personal field published; its key is destroyed (NULL,
``erased_at`` set) when the user is erased, and the row stays so that no key is issued again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("data_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("(data_key IS NULL) = (erased_at IS NOT NULL)",
                           name=op.f("ck_data_keys_key_or_erased")),
        sa.CheckConstraint("data_key IS NULL OR octet_length(data_key) = 32",
                           name=op.f("ck_data_keys_key_length")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_data_keys")),
    )


def downgrade() -> None:
    op.drop_table("data_keys")
