"""OpenID Connect Back-Channel Logout 1.0: a client's back-channel logout URI (and whether it needs
`sid`), and the durable queue of logout tokens to deliver.

A delivery row names the client, the person and the session (`sid`) that ended and why; the logout
token is signed when it is sent, so a retry after an outage carries a fresh `iat` (receivers refuse old
ones) under the same `jti`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("backchannel_logout_uri", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "backchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "logout_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("sid", sa.String(32), nullable=True),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("failed_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index(
        "ix_logout_deliveries_due", "logout_deliveries", ["delivered_at", "failed_at", "next_attempt_at"]
    )
    op.create_index("ix_logout_deliveries_client", "logout_deliveries", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_logout_deliveries_client", table_name="logout_deliveries")
    op.drop_index("ix_logout_deliveries_due", table_name="logout_deliveries")
    op.drop_table("logout_deliveries")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("backchannel_logout_session_required")
        batch.drop_column("backchannel_logout_uri")
