"""Passkeys, TOTP, recovery codes, operator-approved recovery, ephemeral single-use values.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _users_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("mfa_required", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("passkey_prompt_snoozed_until", sa.Double(), nullable=True))
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.Text(), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backup_state", sa.Boolean(), nullable=False),
        sa.Column("aaguid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        _users_fk("passkeys"),
        sa.PrimaryKeyConstraint("id", name="pk_passkeys"),
        sa.UniqueConstraint("credential_id", name="uq_passkeys_credential_id"),
    )
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])
    op.create_table(
        "totp_credentials",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("last_used_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        _users_fk("totp_credentials"),
        sa.PrimaryKeyConstraint("user_id", name="pk_totp_credentials"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        _users_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("user_id", "digest", name="pk_recovery_codes"),
    )
    op.create_table(
        "recovery_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.Double(), nullable=False),
        sa.Column("execute_after", sa.Double(), nullable=False),
        sa.Column("executed_at", sa.Double(), nullable=True),
        sa.Column("cancelled_at", sa.Double(), nullable=True),
        _users_fk("recovery_requests"),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_requests"),
    )
    op.create_index("ix_recovery_requests_user_id", "recovery_requests", ["user_id"])
    op.create_index("ix_recovery_requests_execute_after", "recovery_requests", ["execute_after"])
    op.create_table(
        "ephemeral",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ephemeral"),
    )
    op.create_index("ix_ephemeral_expires_at", "ephemeral", ["expires_at"])


def downgrade() -> None:
    for table in ("ephemeral", "recovery_requests", "recovery_codes", "totp_credentials", "passkeys"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("passkey_prompt_snoozed_until")
        batch.drop_column("mfa_required")
