"""OAuth clients: an ID-token algorithm of their own (default RS256) and an optional logo.

Existing clients kept one algorithm for both token kinds, and keep it for ID tokens too: an explicit
choice of Ed25519 cannot be told from the old default, and a relying party that pinned the algorithm
would stop accepting ID tokens on upgrade. New clients get RS256 ID tokens by default; an existing one
moves with `threshold clients update CLIENT_ID --id-token-alg RS256`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("id_token_alg", sa.String(16), nullable=False, server_default="RS256"))
        batch.add_column(sa.Column("logo_uri", sa.Text(), nullable=True))
    op.execute("UPDATE oauth_clients SET id_token_alg = signing_alg")


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("logo_uri")
        batch.drop_column("id_token_alg")
