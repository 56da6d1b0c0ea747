"""oauth_grants: one row per authorization (code exchange) that every token issued under it names.

Access tokens carry the grant's id (`grant_id`), refresh tokens are the family with that id, and
introspection and userinfo refuse an access token once its grant, session, user or client has ended.
The families stored before this revision become grants of their own (revoked if every token of the
family is), so that the access tokens minted from them after the upgrade find their grant.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_grants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("session_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_oauth_grants_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_grants"),
    )
    for column in ("client_id", "user_id", "session_digest", "expires_at"):
        op.create_index(f"ix_oauth_grants_{column}", "oauth_grants", [column])
    op.execute(
        "INSERT INTO oauth_grants "
        "(id, client_id, user_id, session_digest, created_at, expires_at, revoked_at) "
        "SELECT family_id, MIN(client_id), MIN(user_id), MIN(session_digest), MIN(created_at), "
        "MAX(expires_at), CASE WHEN COUNT(revoked_at) = COUNT(*) THEN MAX(revoked_at) END "
        "FROM refresh_tokens GROUP BY family_id"
    )


def downgrade() -> None:
    op.drop_table("oauth_grants")
