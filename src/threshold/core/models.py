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


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    email_normalized: str
    email_verified: bool
    disabled: bool
    created_at: float
    mfa_enabled: bool = False


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
    KEYS_ROTATED = "keys_rotated"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    kind: AuditKind
    at: float
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the domain needs to know of the request that triggered it."""

    ip: str
    user_agent: str
