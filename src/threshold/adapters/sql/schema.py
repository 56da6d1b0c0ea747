"""Tables. Times are seconds since the epoch (double precision) on every backend."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_normalized", String(320), nullable=False, unique=True),
    Column("email_verified", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("mfa_enabled", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
)

password_credentials = Table(
    "password_credentials",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(512), nullable=False),
    Column("updated_at", Double, nullable=False),
)

login_networks = Table(
    "login_networks",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("network", String(64), primary_key=True),
    Column("last_success_at", Double, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("idle_expires_at", Double, nullable=False),
    Column("absolute_expires_at", Double, nullable=False, index=True),
    Column("auth_time", Double, nullable=False),
    Column("aal", String(8), nullable=False),
    Column("amr", String(64), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("user_agent", String(512), nullable=False),
    Column("device_label", String(64), nullable=False),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("kind", String(48), nullable=False),
    Column("user_id", String(32), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_audit_events_user_id_at", "user_id", "at"),
)
