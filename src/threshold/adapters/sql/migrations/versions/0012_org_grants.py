"""The organization a grant was issued for: authorization codes, grants and refresh tokens issued with the
`organization` scope remember the organization selected in the session, so that the tokens carry its
claims, stand only while the person is a member there, and end when the membership does.

Rows stored before this revision were issued for no organization (NULL).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("authorization_codes", "refresh_tokens", "oauth_grants")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("org_id", sa.String(32), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("org_id")
