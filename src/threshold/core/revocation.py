"""One operation ends a person's access, whatever the cause.

Logout, "sign out everywhere", a password change or reset, disabling or deleting an account
(core.deletion), a SCIM deactivation or deletion, the end of a membership, a refresh token used twice,
an operator's recovery, an upstream identity provider's logout: each is a cause, and every cause goes through
`AccessRevoker.end_access` with a `Reach` saying what it ends. That one operation

1. ends the sessions the reach covers (in the shared session store: every process refuses them at once,
   core.session_cache keeping its per-process cache exact through the invalidation feed);
2. revokes the refresh-token families and grants issued under those sessions (or the reach's
   organization, or its one family), so that the access tokens issued under them are refused by
   introspection and userinfo at once (oidc.live_grant);
3. queues an OpenID Connect Back-Channel Logout notice for every application that held a grant under an
   ended session (oidc.backchannel, delivered from a durable queue with retries);
4. writes one audit event naming the cause, with what it ended (`AUDIT_KINDS`).

What a cause means for the account itself (a disabled flag, a new password, a removed membership) is
the caller's, done before it calls this; what ending access reaches is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from threshold.core.audit import Auditor
from threshold.core.models import AuditKind, RequestContext, SessionRecord
from threshold.core.sessions import SessionService


class Cause(StrEnum):
    """Why a person's access ended: the `cause` of the audit event and of the logout notice."""

    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    SIGN_OUT_EVERYWHERE = "sign_out_everywhere"
    OPERATOR_REVOKED = "operator_revoked"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    USER_DISABLED = "user_disabled"
    SCIM_DEACTIVATED = "scim_deactivated"
    SCIM_DELETED = "scim_deleted"
    MEMBERSHIP_REMOVED = "membership_removed"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"
    OPERATOR_RECOVERY = "operator_recovery"
    UPSTREAM_LOGOUT = "upstream_logout"
    ACCOUNT_CLAIMED = "account_claimed"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    USER_DELETED = "user_deleted"


AUDIT_KINDS = {
    Cause.LOGOUT: AuditKind.LOGOUT,
    Cause.SESSION_REVOKED: AuditKind.SESSION_REVOKED,
    Cause.SIGN_OUT_EVERYWHERE: AuditKind.SESSIONS_REVOKED,
    Cause.OPERATOR_REVOKED: AuditKind.SESSIONS_REVOKED,
}
"""The kind of the one audit event of an end of access: these causes are the person's (or the
operator's) own action, named as the account's security events always named them; every other cause
writes `access_revoked`. Each carries `cause`, the reach and what ended."""


@dataclass(frozen=True, slots=True)
class Family:
    """A refresh-token family (its id is its grant's), the application and session it was issued to."""

    family_id: str
    user_id: str
    client_id: str
    sid: str


@dataclass(frozen=True, slots=True)
class Reach:
    """What one end of access covers. Build it with the class methods."""

    user_id: str
    sessions: tuple[SessionRecord, ...] | None = None
    """Exactly these sessions (and the grants under them); None: see the other fields."""
    keep: SessionRecord | None = None
    """Every session of the user but this one (and the grants under the others)."""
    org_id: str | None = None
    """The sessions that selected this organization, and every grant issued for it."""
    family: Family | None = None
    """One refresh-token family and its grant (with `sessions`, those sessions too)."""
    client_id: str | None = None
    """Every grant of the user to this one application; no session ends (a withdrawn consent)."""

    @classmethod
    def everything(cls, user_id: str) -> Reach:
        """Every session and every grant of the user."""
        return cls(user_id=user_id)

    @classmethod
    def these(cls, user_id: str, sessions: Sequence[SessionRecord]) -> Reach:
        return cls(user_id=user_id, sessions=tuple(sessions))

    @classmethod
    def session(cls, record: SessionRecord) -> Reach:
        return cls(user_id=record.user_id, sessions=(record,))

    @classmethod
    def all_but(cls, record: SessionRecord) -> Reach:
        return cls(user_id=record.user_id, keep=record)

    @classmethod
    def organization(cls, user_id: str, org_id: str) -> Reach:
        return cls(user_id=user_id, org_id=org_id)

    @classmethod
    def of_family(cls, family: Family, *, session: SessionRecord | None = None) -> Reach:
        return cls(user_id=family.user_id, family=family, sessions=(session,) if session else ())

    @classmethod
    def application(cls, user_id: str, client_id: str) -> Reach:
        return cls(user_id=user_id, client_id=client_id)

    @property
    def scope(self) -> str:
        """How the audit event names the reach."""
        if self.client_id is not None:
            return "application"
        if self.family is not None:
            return "family"
        if self.sessions is not None:
            return "sessions"
        if self.keep is not None:
            return "other_sessions"
        if self.org_id is not None:
            return "organization"
        return "everything"


@dataclass(frozen=True, slots=True)
class LogoutNotice:
    """An application to tell that the person's session with it ended (OIDC Back-Channel Logout)."""

    client_id: str
    user_id: str
    sid: str | None


@dataclass(frozen=True, slots=True)
class GrantsEnded:
    refresh_tokens: int
    notices: tuple[LogoutNotice, ...] = ()


class Applications(Protocol):
    """The applications' side of an end of access (implemented by oidc.backchannel)."""

    async def end_grants(self, reach: Reach, ended: Sequence[SessionRecord]) -> GrantsEnded:
        """Revoke the grants (and their refresh-token families) the reach covers, given the sessions
        whose grants it ends (the sessions ended; for one application's grants, the live sessions);
        which applications held grants under those sessions."""
        ...

    async def notify(self, notices: Sequence[LogoutNotice], *, cause: Cause) -> int:
        """Queue a logout token for each notice whose application registered a back-channel logout
        URI; how many were queued."""
        ...


@dataclass(frozen=True, slots=True)
class Ended:
    sessions: tuple[SessionRecord, ...]
    refresh_tokens: int
    notified: int


class AccessRevoker:
    def __init__(self, *, sessions: SessionService, auditor: Auditor) -> None:
        self._sessions = sessions
        self._audit = auditor
        self._applications: Applications | None = None

    def attach_applications(self, applications: Applications) -> None:
        """The OIDC provider's side (built after the core services)."""
        self._applications = applications

    async def end_access(
        self, reach: Reach, *, cause: Cause, context: RequestContext | None = None, **detail: str
    ) -> Ended:
        """End what `reach` covers for `cause` on every process at once, tell the applications, and
        audit it once (see the module docstring)."""
        ended = await self._end_sessions(reach)
        grants = GrantsEnded(refresh_tokens=0)
        notified = 0
        if self._applications is not None:
            affected = ended if reach.client_id is None else await self._sessions.list_sessions(reach.user_id)
            grants = await self._applications.end_grants(reach, affected)
            notified = await self._applications.notify(grants.notices, cause=cause)
        await self._audit.record(
            AUDIT_KINDS.get(cause, AuditKind.ACCESS_REVOKED),
            user_id=reach.user_id,
            context=context,
            cause=cause.value,
            reach=reach.scope,
            sessions=str(len(ended)),
            refresh_tokens=str(grants.refresh_tokens),
            notified=str(notified),
            **({"org": reach.org_id} if reach.org_id else {}),
            **detail,
        )
        return Ended(sessions=tuple(ended), refresh_tokens=grants.refresh_tokens, notified=notified)

    async def _end_sessions(self, reach: Reach) -> list[SessionRecord]:
        if reach.client_id is not None:
            return []
        if reach.sessions is not None:
            return [r for r in reach.sessions if await self._sessions.take_session(r)]
        if reach.org_id is not None:
            return await self._sessions.end_org_sessions(user_id=reach.user_id, org_id=reach.org_id)
        return await self._sessions.end_user_sessions(reach.user_id, keep=reach.keep)
