"""Users get a role: ``user`` (default) or ``operator``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

Roles are authorization, not account history: no event carries them, so they are granted in
place (``polystream users promote``) and a replay of the events neither grants nor removes one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("role", sa.String(length=16), server_default=sa.text("'user'"),
                  nullable=False),
    )
    op.create_check_constraint(op.f("ck_users_role"), "users", "role IN ('user', 'operator')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.drop_column("users", "role")
