"""Account deletion: an account's scheduled erasure (grace period), kept after it as a pseudonym; the
applications' deletion event URI, and the kind of a queued delivery (a logout token or that event).

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


PSEUDONYMISED = (
    "NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.kind = OLD.kind AND OLD.user_id IS NOT NULL "
    "AND OLD.user_id NOT LIKE 'erased-%' AND NEW.user_id LIKE 'erased-%' "
    "AND NEW.ip IS NULL AND NEW.user_agent IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = OLD.user_id) "
    "AND EXISTS (SELECT 1 FROM account_deletions WHERE account_deletions.pseudonym = NEW.user_id "
    "AND account_deletions.erased_at IS NOT NULL)"
)
"""The one change the append-only audit log accepts: the event of an account that is gone, put under
the pseudonym of an erasure carried out (core.deletion; adapters.sql.deletion_repo deletes the account,
then rewrites its events, in one transaction), without address or user agent, once."""

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION threshold_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {condition} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql
"""
_PG_ORIGINAL = """
CREATE OR REPLACE FUNCTION threshold_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql
"""
_SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events {when}"
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION.format(condition=PSEUDONYMISED))
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute(_SQLITE_NO_UPDATE.format(when=f"WHEN NOT ({PSEUDONYMISED}) "))
    op.create_table(
        "account_deletions",
        sa.Column("pseudonym", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("requested_at", sa.Double(), nullable=False),
        sa.Column("erase_at", sa.Double(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("erased_at", sa.Double(), nullable=True),
        sa.Column("keepable", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.PrimaryKeyConstraint("pseudonym", name="pk_account_deletions"),
        sa.UniqueConstraint("user_id", name="uq_account_deletions_user_id"),
    )
    op.create_index("ix_account_deletions_erase_at", "account_deletions", ["erase_at"])
    # Applications that register for it hear of an erasure (a RISC account-purged event), through the
    # durable queue of logout tokens.
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("deletion_event_uri", sa.Text(), nullable=True))
    with op.batch_alter_table("logout_deliveries") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="logout"))


def downgrade() -> None:
    with op.batch_alter_table("logout_deliveries") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("deletion_event_uri")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_ORIGINAL)
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute(_SQLITE_NO_UPDATE.format(when=""))
    op.drop_index("ix_account_deletions_erase_at", table_name="account_deletions")
    op.drop_table("account_deletions")
