"""Who may use the operators' console, and what it reads that no other surface does.

The rule, in one place (`Console.admit` and `Console.require_fresh`):

- Only accounts granted console access (`threshold users grant-admin EMAIL`; `--off` takes it back,
  both audited) get in, and only while enabled. Everyone else is `Forbidden`, with no word of why.
- An operator gets in only on an aal2 session whose second factor was proved here (a passkey, or a
  password and an authenticator app's or recovery code): an identity provider's word that it used MFA
  (an SSO session's `mfa`) is no way in until the operator proves a factor here as well. Otherwise the
  refusal (`ConsoleNeedsSecondFactor`) says so, to the operator only.
- Every change made in the console needs a second factor or passkey proved here within the
  re-authentication window (`mfa.reauthentication_window`): `ReauthenticationRequired` otherwise, which
  the console answers with the step-up page.

Access is read from the store on every request (one indexed read), so `--off` takes effect at the next
request on every process, with nothing cached to invalidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import Forbidden
from threshold.core.flows.stepup import StepUp
from threshold.core.i18n import N_
from threshold.core.methods.assurance import proved_locally
from threshold.core.models import Aal, AuditEvent, AuditKind, RequestContext, SessionRecord, User

PAGE_SIZE = 50
"""Rows per page of the console's lists."""


class ConsoleNeedsSecondFactor(Forbidden):
    """An operator on an aal1 session: the console needs a second factor or a passkey in this session."""

    code = "aal2_required"
    message = N_("The console needs a session signed in with a second factor or a passkey.")


class OperatorAccount(Forbidden):
    """Disabling or recovering an account with console access is the CLI's to do, not the console's: a
    stolen console session cannot lock the other operators out."""

    code = "operator_account"
    message = N_(
        "This account has console access: disable or recover it with the CLI "
        "(first `threshold users grant-admin EMAIL --off`)."
    )


@dataclass(frozen=True, slots=True)
class ConsoleGrant:
    user_id: str
    granted_at: float
    granted_by: str


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit log (each optional), and the keyset position: events strictly older than
    `before` (at, id), newest first."""

    user_id: str | None = None
    kind: AuditKind | None = None
    ip: str | None = None
    since: float | None = None
    until: float | None = None
    before: tuple[float, int] | None = None


class ConsoleStore(Protocol):
    """The console's grants, and the keyset reads of its large lists."""

    async def grant(self, grant: ConsoleGrant) -> bool:
        """True when the account did not have access before."""
        ...

    async def revoke(self, user_id: str) -> bool:
        """True when the account had access."""
        ...

    async def is_granted(self, user_id: str) -> bool: ...

    async def grants(self) -> Sequence[ConsoleGrant]: ...

    async def users_page(self, *, prefix: str, after: str | None, limit: int) -> Sequence[User]:
        """Accounts whose normalized address starts with `prefix`, ordered by it, after `after`."""
        ...

    async def audit_page(self, query: AuditQuery, *, limit: int) -> Sequence[AuditEvent]: ...


class Console:
    def __init__(self, *, store: ConsoleStore, step_up: StepUp, auditor: Auditor, clock: Clock) -> None:
        self._store = store
        self._step_up = step_up
        self._audit = auditor
        self._clock = clock

    async def grant(self, user: User, *, by: str, context: RequestContext) -> bool:
        """Give the account console access; audited. False when it had it already."""
        granted = await self._store.grant(
            ConsoleGrant(user_id=user.id, granted_at=self._clock.now(), granted_by=by[:200])
        )
        if granted:
            await self._audit.record(
                AuditKind.CONSOLE_ACCESS_GRANTED, user_id=user.id, context=context, by=by
            )
        return granted

    async def revoke(self, user: User, *, by: str, context: RequestContext) -> bool:
        """Take console access back; audited. False when the account had none."""
        revoked = await self._store.revoke(user.id)
        if revoked:
            await self._audit.record(
                AuditKind.CONSOLE_ACCESS_REVOKED, user_id=user.id, context=context, by=by
            )
        return revoked

    async def is_operator(self, user: User) -> bool:
        return not user.disabled and await self._store.is_granted(user.id)

    async def grants(self) -> Sequence[ConsoleGrant]:
        return await self._store.grants()

    async def admit(self, user: User, session: SessionRecord) -> None:
        """Raises Forbidden unless `user` may read the console in this session (the module docstring)."""
        if not await self.is_operator(user):
            raise Forbidden()
        if session.aal is not Aal.AAL2 or not proved_locally(session.amr):
            raise ConsoleNeedsSecondFactor()

    async def require_fresh(self, user: User, session: SessionRecord) -> None:
        """Raises ReauthenticationRequired unless a second factor or passkey was proved here, in this
        session, within the re-authentication window (every change made in the console)."""
        await self._step_up.require_recent_auth(user, session, local=True)

    async def users_page(self, *, prefix: str = "", after: str | None = None) -> Sequence[User]:
        """A page of accounts by address (PAGE_SIZE + 1 rows: the last one says there is a next page)."""
        return await self._store.users_page(prefix=prefix, after=after, limit=PAGE_SIZE + 1)

    async def audit_page(self, query: AuditQuery, *, limit: int = PAGE_SIZE + 1) -> Sequence[AuditEvent]:
        return await self._store.audit_page(query, limit=limit)

    async def exported(self, query: AuditQuery, *, fmt: str, context: RequestContext) -> None:
        """Record that an operator exported the audit log, and what the export selects."""
        detail = {
            "format": fmt,
            **({"user": query.user_id} if query.user_id else {}),
            **({"event": query.kind.value} if query.kind else {}),
            **({"ip": query.ip} if query.ip else {}),
        }
        await self._audit.record(AuditKind.AUDIT_EXPORTED, user_id=None, context=context, **detail)
