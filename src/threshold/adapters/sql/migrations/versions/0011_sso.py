"""Enterprise sign-in: the organization and upstream connection of a session, SSO connections per
organization, and the upstream identities linked to accounts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("org_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("connection_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("upstream_acr", sa.String(200), nullable=True))
        batch.add_column(sa.Column("upstream_amr", sa.String(200), nullable=False, server_default=""))
        batch.create_index("ix_sessions_org_id", ["org_id"])
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("require_sso", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_sso_connections_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sso_connections"),
    )
    op.create_index("ix_sso_connections_org_id", "sso_connections", ["org_id"])
    op.create_table(
        "sso_identities",
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sso_identities_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("connection_id", "subject", name="pk_sso_identities"),
    )
    op.create_index("ix_sso_identities_user_id", "sso_identities", ["user_id"])


def downgrade() -> None:
    op.drop_table("sso_identities")
    op.drop_table("sso_connections")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_org_id")
        batch.drop_column("upstream_amr")
        batch.drop_column("upstream_acr")
        batch.drop_column("connection_id")
        batch.drop_column("org_id")
