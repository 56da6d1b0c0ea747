"""OpenID Connect provider: signing keys, clients, codes, refresh tokens, consents, single-use marks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _users_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("activated_at", sa.Double(), nullable=True),
        sa.Column("retired_at", sa.Double(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_index("ix_signing_keys_state", "signing_keys", ["state"])
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.Text(), nullable=False),
        sa.Column("grant_types", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("signing_alg", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("session_digest", sa.String(64), nullable=False),
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(512), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("auth_time", sa.Double(), nullable=False),
        sa.Column("acr", sa.String(16), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.Column("access_token_jti", sa.String(64), nullable=True),
        sa.Column("refresh_family", sa.String(32), nullable=True),
        _users_fk("authorization_codes"),
        sa.PrimaryKeyConstraint("digest", name="pk_authorization_codes"),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_table(
        "refresh_tokens",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("parent_digest", sa.String(64), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("session_digest", sa.String(64), nullable=False),
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("auth_time", sa.Double(), nullable=False),
        sa.Column("acr", sa.String(16), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("successor", sa.Text(), nullable=True),
        _users_fk("refresh_tokens"),
        sa.PrimaryKeyConstraint("digest", name="pk_refresh_tokens"),
    )
    for column in ("family_id", "user_id", "session_digest", "expires_at"):
        op.create_index(f"ix_refresh_tokens_{column}", "refresh_tokens", [column])
    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.Double(), nullable=False),
        _users_fk("consents"),
        sa.PrimaryKeyConstraint("user_id", "client_id", name="pk_consents"),
    )
    op.create_table(
        "marks",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_marks"),
    )
    op.create_index("ix_marks_expires_at", "marks", ["expires_at"])


def downgrade() -> None:
    for table in (
        "marks",
        "consents",
        "refresh_tokens",
        "authorization_codes",
        "oauth_clients",
        "signing_keys",
    ):
        op.drop_table(table)
