"""Domain records. Plain frozen dataclasses; adapters map them to storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Aal(StrEnum):
    """Authenticator assurance level (NIST SP 800-63B)."""

    AAL1 = "aal1"
    AAL2 = "aal2"


class Amr(StrEnum):
    """Authentication method references (RFC 8176)."""

    PASSWORD = "pwd"
    OTP = "otp"
    HARDWARE_KEY = "hwk"
    SOFTWARE_KEY = "swk"
    USER_PRESENCE = "user"
    EMAIL = "email"
    MFA = "mfa"
    """An upstream identity provider said it used more than one factor (SSO)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    email_normalized: str
    email_verified: bool
    disabled: bool
    created_at: float
    mfa_required: bool = False
    """Set by an operator: this user must have a second factor."""
    passkey_prompt_snoozed_until: float | None = None
    credential_epoch: int = 0
    """Raised by every change of a sign-in secret (password set or removed, factors reset by recovery):
    a sign-in whose first step ran under an older epoch never yields a session."""


@dataclass(frozen=True, slots=True)
class ScheduledDeletion:
    """An account's erasure, due at `erase_at` (core.deletion). After it, `user_id` is gone and the
    pseudonym names the person in the audit log."""

    pseudonym: str
    user_id: str | None
    requested_at: float
    erase_at: float
    requested_by: str
    erased_at: float | None = None
    keepable: bool = True
    """Whether signing in may still keep the account: not when it was already disabled when deleted,
    or an operator (or SCIM) disabled it since."""


@dataclass(frozen=True, slots=True)
class Sightings:
    """What the account remembers of where it signed in: the browsers it recognises (when each was first
    and last seen; the cookie's digest stays inside) and the networks of its successful sign-ins."""

    devices: tuple[tuple[float, float], ...]
    """(first seen, last seen) of each recognised browser."""
    networks: tuple[tuple[str, float], ...]
    """(network, last successful sign-in from it)."""


@dataclass(frozen=True, slots=True)
class PasswordCredential:
    user_id: str
    hash: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A server-side session. `digest` is SHA-256 of the cookie value; the value itself is never stored."""

    digest: str
    public_id: str
    user_id: str
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    absolute_expires_at: float
    aal: Aal
    amr: tuple[Amr, ...]
    ip: str
    user_agent: str
    device_label: str
    auth_time: float = 0.0
    org_id: str | None = None
    """The organization selected in this session (its role is read from the membership, live)."""
    connection_id: str | None = None
    """The upstream connection (enterprise or social SSO) this session was signed in through."""
    upstream_acr: str | None = None
    upstream_amr: tuple[str, ...] = ()
    """What the upstream identity provider said of its own authentication, verbatim."""

    @property
    def expires_at(self) -> float:
        return min(self.idle_expires_at, self.absolute_expires_at)


class AuditKind(StrEnum):
    SIGNUP = "signup"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_THROTTLED = "login_throttled"
    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    SESSIONS_REVOKED = "sessions_revoked"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_REMOVED = "password_removed"
    PASSWORD_REHASHED = "password_rehashed"
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    AUTHORIZATION_CODE_REPLAY = "authorization_code_replay"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"
    CLIENT_CREATED = "client_created"
    CLIENT_DELETED = "client_deleted"
    CLIENT_UPDATED = "client_updated"
    KEYS_ROTATED = "keys_rotated"
    MFA_SUCCEEDED = "mfa_succeeded"
    MFA_FAILED = "mfa_failed"
    REAUTHENTICATED = "reauthenticated"
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    PASSKEY_RENAMED = "passkey_renamed"
    PASSKEY_COUNTER_REGRESSION = "passkey_counter_regression"
    TOTP_ENABLED = "totp_enabled"
    TOTP_REMOVED = "totp_removed"
    RECOVERY_CODES_GENERATED = "recovery_codes_generated"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_REQUESTED = "recovery_requested"
    RECOVERY_CANCELLED = "recovery_cancelled"
    RECOVERY_COMPLETED = "recovery_completed"
    MFA_POLICY_CHANGED = "mfa_policy_changed"
    EMAIL_VERIFIED = "email_verified"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    EMAIL_LOGIN_REQUESTED = "email_login_requested"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    NEW_DEVICE_SIGN_IN = "new_device_sign_in"
    ORG_CREATED = "org_created"
    ORG_MEMBER_ADDED = "org_member_added"
    ORG_MEMBER_REMOVED = "org_member_removed"
    ORG_DOMAIN_ADDED = "org_domain_added"
    ORG_DOMAIN_VERIFIED = "org_domain_verified"
    ORG_INVITATION_SENT = "org_invitation_sent"
    SSO_CONNECTION_ADDED = "sso_connection_added"
    SSO_CONNECTION_REMOVED = "sso_connection_removed"
    SSO_REJECTED = "sso_rejected"
    SSO_USER_PROVISIONED = "sso_user_provisioned"
    SSO_IDENTITY_LINKED = "sso_identity_linked"
    SSO_BREAK_GLASS = "sso_break_glass"
    SSO_UPSTREAM_LOGOUT = "sso_upstream_logout"
    SSO_ACCOUNT_CLAIMED = "sso_account_claimed"
    ACCESS_REVOKED = "access_revoked"
    """Sessions, grants and applications' sessions ended, with the cause (core.revocation)."""
    SCIM_TOKEN_CREATED = "scim_token_created"
    SCIM_TOKEN_REVOKED = "scim_token_revoked"
    SCIM_USER_PROVISIONED = "scim_user_provisioned"
    SCIM_USER_UPDATED = "scim_user_updated"
    SCIM_USER_DEACTIVATED = "scim_user_deactivated"
    SCIM_USER_REACTIVATED = "scim_user_reactivated"
    SCIM_USER_DELETED = "scim_user_deleted"
    CONSOLE_ACCESS_GRANTED = "console_access_granted"
    CONSOLE_ACCESS_REVOKED = "console_access_revoked"
    AUDIT_EXPORTED = "audit_exported"
    ACCOUNT_EXPORTED = "account_exported"
    """The person downloaded everything Threshold holds about them (GET /api/v1/account/export)."""
    ACCOUNT_DELETION_REQUESTED = "account_deletion_requested"
    ACCOUNT_DELETION_CANCELLED = "account_deletion_cancelled"
    ACCOUNT_ERASED = "account_erased"
    """The account's personal data is gone; the event names the person by their pseudonym."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    kind: AuditKind
    at: float
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    id: int | None = None


class Method(StrEnum):
    """Ways to prove who you are, as named in the API (`methods` lists, `method` fields)."""

    PASSWORD = "password"
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


@dataclass(frozen=True, slots=True)
class Passkey:
    id: str
    user_id: str
    credential_id: str
    """base64url"""
    public_key: str
    """base64url COSE key"""
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    backup_state: bool
    aaguid: str
    name: str
    created_at: float
    last_used_at: float | None = None
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class SecondFactors:
    """The second factors an account has, read at once (a sign-in's one lookup): whether it has a passkey
    and a confirmed authenticator app, and how many unused recovery codes."""

    passkey: bool
    totp: bool
    recovery_codes: int


@dataclass(frozen=True, slots=True)
class TotpCredential:
    user_id: str
    secret: str
    """Sealed with the key-encryption key (purpose "totp")."""
    confirmed: bool
    last_used_step: int
    created_at: float


@dataclass(frozen=True, slots=True)
class RecoveryRequest:
    id: str
    user_id: str
    requested_by: str
    requested_at: float
    execute_after: float
    executed_at: float | None = None
    cancelled_at: float | None = None


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    EMAIL_LOGIN = "email_login"
    CHANGE_EMAIL = "change_email"


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    """An emailed secret: stored as a digest, single use, short-lived. `binding` ties a sign-in link to
    the browser that asked for it; `code_digest` is the 6-digit code sent with it."""

    digest: str
    purpose: TokenPurpose
    user_id: str
    email: str
    created_at: float
    expires_at: float
    code_digest: str | None = None
    binding: str | None = None
    used_at: float | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """A message to render (templates `mail/{kind}.txt` and `.html`) and queue."""

    kind: str
    to: str
    context: dict[str, str]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the domain needs to know of the request that triggered it."""

    ip: str
    user_agent: str
    device: str | None = None
    """Digest of the browser's long-lived device cookie, when it has one."""
    actor: str | None = None
    """Who acted when it is not the person the event is about: an operator in the console
    (`console:<user id>`). The audit trail records it with every event of the request."""
