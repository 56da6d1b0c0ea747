"""SCIM 2.0 provisioning: an organization's bearer tokens (digests only, several live at once for
rollover), and the Users and Groups its identity provider provisions.

A `scim_resources` row holds one SCIM resource of one organization as JSON, with the columns its
filters and uniqueness need: `name_key` is the userName (User) or displayName (Group) casefolded,
unique per organization and type; a User row names the Threshold account it is bound to.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_scim_tokens_org_id_organizations", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_scim_tokens"),
        sa.UniqueConstraint("digest", name="uq_scim_tokens_digest"),
    )
    op.create_index("ix_scim_tokens_org_id", "scim_tokens", ["org_id"])
    op.create_table(
        "scim_resources",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(8), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("name_key", sa.String(320), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("last_modified", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_scim_resources_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_scim_resources_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_scim_resources"),
        sa.UniqueConstraint("org_id", "resource_type", "name_key", name="uq_scim_resources_name"),
        sa.UniqueConstraint("org_id", "user_id", name="uq_scim_resources_user"),
    )
    op.create_index("ix_scim_resources_user_id", "scim_resources", ["user_id"])
    op.create_index(
        "ix_scim_resources_external_id", "scim_resources", ["org_id", "resource_type", "external_id"]
    )
    op.create_index(
        "ix_scim_resources_listing", "scim_resources", ["org_id", "resource_type", "created", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_scim_resources_listing", table_name="scim_resources")
    op.drop_index("ix_scim_resources_external_id", table_name="scim_resources")
    op.drop_index("ix_scim_resources_user_id", table_name="scim_resources")
    op.drop_table("scim_resources")
    op.drop_index("ix_scim_tokens_org_id", table_name="scim_tokens")
    op.drop_table("scim_tokens")
