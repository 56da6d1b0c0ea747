"""Operators' console: the accounts granted access to it (`threshold users grant-admin`), and an index
for the audit log's pages (newest first by time, with or without filters).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_operators",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("granted_at", sa.Double(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_console_operators_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_console_operators"),
    )
    op.create_index("ix_audit_events_at_id", "audit_events", ["at", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_at_id", table_name="audit_events")
    op.drop_table("console_operators")
