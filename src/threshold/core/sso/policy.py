"""`--require-sso`, enforced where every session is born (SignIn.complete).

Home-realm discovery sends such addresses to their IdP before any password is checked; this gate is
what makes it a rule rather than a routing hint: no proof but a sign-in at the organization's own
connection yields a session for an address at its verified domains, whatever the method (password,
emailed link, passkey, recovery). The named break-glass owners are the one exception, and each of
their sign-ins is audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from threshold.core.audit import Auditor
from threshold.core.methods.proofs import Proof
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.orgs.models import OrgRole
from threshold.core.orgs.ports import OrgRepo
from threshold.core.sso.connections import Connections
from threshold.core.sso.errors import SsoRequired


class SsoGate:
    def __init__(self, *, connections: Connections, orgs: OrgRepo, auditor: Auditor) -> None:
        self._connections = connections
        self._orgs = orgs
        self._audit = auditor

    async def check(self, user: User, proofs: Sequence[Proof], *, context: RequestContext) -> None:
        """Raises SsoRequired unless these proofs may sign this account in."""
        required = await self._connections.required_connection(user.email_normalized)
        if required is None or required.org_id is None:
            return
        if any(p.upstream is not None and p.upstream.org_id == required.org_id for p in proofs):
            return
        if user.email_normalized in required.policy.break_glass:
            memberships = await self._orgs.memberships_of(user.id)
            if any(m.org_id == required.org_id and m.role is OrgRole.OWNER for m in memberships):
                await self._audit.record(
                    AuditKind.SSO_BREAK_GLASS,
                    user_id=user.id,
                    context=context,
                    org=required.org_id,
                    method=",".join(p.method for p in proofs),
                )
                return
        raise SsoRequired(self._connections.start_url(email=user.email))
