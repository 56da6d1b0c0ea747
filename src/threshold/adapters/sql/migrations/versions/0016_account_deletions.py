"""Account deletion: an account's scheduled erasure (grace period), kept after it as a pseudonym.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_deletions",
        sa.Column("pseudonym", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("requested_at", sa.Double(), nullable=False),
        sa.Column("erase_at", sa.Double(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("erased_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("pseudonym", name="pk_account_deletions"),
        sa.UniqueConstraint("user_id", name="uq_account_deletions_user_id"),
    )
    op.create_index("ix_account_deletions_erase_at", "account_deletions", ["erase_at"])


def downgrade() -> None:
    op.drop_index("ix_account_deletions_erase_at", table_name="account_deletions")
    op.drop_table("account_deletions")
