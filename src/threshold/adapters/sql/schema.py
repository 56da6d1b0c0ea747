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
    UniqueConstraint,
    false,
    true,
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
    Column("created_at", Double, nullable=False),
    Column("mfa_required", Boolean, nullable=False, default=False, server_default="0"),
    Column("passkey_prompt_snoozed_until", Double, nullable=True),
    Column("credential_epoch", Integer, nullable=False, default=0, server_default="0"),
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
    Column("org_id", String(32), nullable=True, index=True),
    Column("connection_id", String(64), nullable=True),
    Column("upstream_acr", String(200), nullable=True),
    Column("upstream_amr", String(200), nullable=False, server_default=""),
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

# --- OpenID Connect provider (migration 0002) ---------------------------------------------------

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("state", String(8), nullable=False, index=True),
    Column("public_jwk", Text, nullable=False),
    Column("private_jwk", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("activated_at", Double, nullable=True),
    Column("retired_at", Double, nullable=True),
    Column("expires_at", Double, nullable=True),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_digest", String(64), nullable=True),
    Column("public", Boolean, nullable=False),
    Column("first_party", Boolean, nullable=False),
    Column("redirect_uris", Text, nullable=False),
    Column("post_logout_redirect_uris", Text, nullable=False),
    Column("grant_types", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("token_endpoint_auth_method", String(32), nullable=False),
    Column("jwks", Text, nullable=True),
    Column("access_token_lifetime", Integer, nullable=False),
    Column("signing_alg", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("id_token_alg", String(16), nullable=False, server_default="RS256"),
    Column("logo_uri", Text, nullable=True),
    Column("backchannel_logout_uri", Text, nullable=True),
    Column("deletion_event_uri", Text, nullable=True),
    Column("backchannel_logout_session_required", Boolean, nullable=False, server_default=false()),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("session_digest", String(64), nullable=False),
    Column("sid", String(32), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("nonce", String(512), nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("acr", String(16), nullable=False),
    Column("amr", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
    Column("used_at", Double, nullable=True),
    Column("access_token_jti", String(64), nullable=True),
    Column("refresh_family", String(32), nullable=True),
    Column("org_id", String(32), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("family_id", String(32), nullable=False, index=True),
    Column("parent_digest", String(64), nullable=True),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("session_digest", String(64), nullable=False, index=True),
    Column("sid", String(32), nullable=False),
    Column("scope", Text, nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("acr", String(16), nullable=False),
    Column("amr", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
    Column("used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    Column("successor", Text, nullable=True),
    Column("org_id", String(32), nullable=True),
)

oauth_grants = Table(
    "oauth_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("session_digest", String(64), nullable=False, index=True),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
    Column("revoked_at", Double, nullable=True),
    Column("org_id", String(32), nullable=True),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("scope", Text, nullable=False),
    Column("granted_at", Double, nullable=False),
)

marks = Table(
    "marks",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("expires_at", Double, nullable=False, index=True),
)

# --- Second factors, passkeys and recovery (migration 0003) -------------------------------------

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("credential_id", String(1400), nullable=False, unique=True),
    Column("public_key", Text, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("transports", Text, nullable=False),
    Column("backup_eligible", Boolean, nullable=False),
    Column("backup_state", Boolean, nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("name", String(100), nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
)

totp_credentials = Table(
    "totp_credentials",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("confirmed", Boolean, nullable=False),
    Column("last_used_step", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("used_at", Double, nullable=True),
    Column("created_at", Double, nullable=False),
)

recovery_requests = Table(
    "recovery_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", Double, nullable=False),
    Column("execute_after", Double, nullable=False, index=True),
    Column("executed_at", Double, nullable=True),
    Column("cancelled_at", Double, nullable=True),
)

ephemeral = Table(
    "ephemeral",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
)

# --- Email: queue, one-time tokens, known devices (migration 0004) ------------------------------

mail_queue = Table(
    "mail_queue",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("to_address", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("next_attempt_at", Double, nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("lease_until", Double, nullable=True),
    Column("sent_at", Double, nullable=True),
    Column("failed_at", Double, nullable=True),
    Column("last_error", String(300), nullable=True),
    Column("transport", String(16), nullable=True),
)

logout_deliveries = Table(
    "logout_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("sid", String(32), nullable=True),
    Column("cause", String(32), nullable=False),
    Column("kind", String(16), nullable=False, server_default="logout"),
    Column("created_at", Double, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_until", Double, nullable=True),
    Column("delivered_at", Double, nullable=True),
    Column("failed_at", Double, nullable=True),
    Column("last_error", String(300), nullable=True),
    Index("ix_logout_deliveries_due", "delivered_at", "failed_at", "next_attempt_at"),
    Index("ix_logout_deliveries_client", "client_id"),
)

one_time_tokens = Table(
    "one_time_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("purpose", String(24), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("code_digest", String(64), nullable=True),
    Column("binding", String(64), nullable=True, index=True),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
    Column("used_at", Double, nullable=True),
    Column("attempts", Integer, nullable=False),
)

known_devices = Table(
    "known_devices",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("device", String(64), primary_key=True),
    Column("first_seen_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
)

org_members = Table(
    "org_members",
    metadata,
    Column("org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
)

org_domains = Table(
    "org_domains",
    metadata,
    Column("domain", String(253), primary_key=True),  # one organization per domain
    Column(
        "org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("txt_value", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("verified_at", Double, nullable=True),
    Column("trusted", Boolean, nullable=False, default=False),
)

org_invitations = Table(
    "org_invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("email_normalized", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("invited_by", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("accepted_at", Double, nullable=True),
)

sso_connections = Table(
    "sso_connections",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("type", String(8), nullable=False),
    Column("name", String(200), nullable=False),
    Column("config", Text, nullable=False),  # JSON: issuer, client id, sealed secret, claims; or IdP metadata
    Column("require_sso", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
)

sso_identities = Table(
    "sso_identities",
    metadata,
    Column("connection_id", String(64), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
)

scim_tokens = Table(
    "scim_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the token; never the token
    Column("name", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
)

scim_resources = Table(
    "scim_resources",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("resource_type", String(8), nullable=False),  # User or Group
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("external_id", String(255), nullable=True),
    Column("name_key", String(320), nullable=False),  # userName (User) or displayName (Group), casefolded
    Column("active", Boolean, nullable=True),
    Column("document", Text, nullable=False),  # the SCIM resource as JSON, without meta
    Column("version", Integer, nullable=False),
    Column("created", Double, nullable=False),
    Column("last_modified", Double, nullable=False),
    UniqueConstraint("org_id", "resource_type", "name_key", name="uq_scim_resources_name"),
    UniqueConstraint("org_id", "user_id", name="uq_scim_resources_user"),  # one User per account
    Index("ix_scim_resources_external_id", "org_id", "resource_type", "external_id"),
    Index("ix_scim_resources_listing", "org_id", "resource_type", "created", "id"),
)

# --- Operators' console (migration 0015) -------------------------------------------------------

console_operators = Table(
    "console_operators",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("granted_at", Double, nullable=False),
    Column("granted_by", String(200), nullable=False),
)

# The console's audit log pages newest first by (at, id), with or without filters.
Index("ix_audit_events_at_id", audit_events.c.at, audit_events.c.id)

# --- Account deletion (migration 0016) ----------------------------------------------------------

account_deletions = Table(
    "account_deletions",
    metadata,
    # No foreign key: the row outlives the account it erased (user_id is emptied then, the pseudonym
    # stays, naming the person in the audit log from then on).
    Column("pseudonym", String(40), primary_key=True),
    Column("user_id", String(32), nullable=True, unique=True),
    Column("requested_at", Double, nullable=False),
    Column("erase_at", Double, nullable=False, index=True),
    Column("requested_by", String(200), nullable=False),
    Column("erased_at", Double, nullable=True),
    # False once an operator (or SCIM) locked the account too: signing in can no longer keep it.
    Column("keepable", Boolean, nullable=False, server_default=true()),
)
