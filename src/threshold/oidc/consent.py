"""A user's consents to clients: remembered when given, listed, and revoked with what they granted.

OIDC Core section 3.1.2.4: the provider obtains the user's consent before releasing information to a
client, and may remember it. Revoking a consent ends the client's refresh tokens for the user (RFC 7009
section 2.1: what rests on a withdrawn authorization goes with it).
"""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.oidc.authorize import AuthorizationRequest
from threshold.oidc.models import Client, Consent
from threshold.oidc.ports import ClientRepo, ConsentRepo


class Consents:
    def __init__(
        self,
        *,
        consents: ConsentRepo,
        clients: ClientRepo,
        revoker: AccessRevoker,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._consents = consents
        self._clients = clients
        self._revoker = revoker
        self._audit = auditor
        self._clock = clock

    async def get(self, user_id: str, client_id: str) -> Consent | None:
        """The consent the user gave the client, if any."""
        return await self._consents.get(user_id, client_id)

    async def remember(
        self,
        request: AuthorizationRequest,
        *,
        user: User,
        previous: Consent | None,
        context: RequestContext | None,
    ) -> None:
        """Record the consent to the request's scopes, on top of those consented to before."""
        scopes = frozenset(request.scopes) | (previous.scopes if previous else frozenset())
        await self._consents.put(Consent(user.id, request.client.client_id, scopes, self._clock.now()))
        await self._audit.record(
            AuditKind.CONSENT_GRANTED,
            user_id=user.id,
            context=context,
            client=request.client.client_id,
            scope=" ".join(sorted(scopes)),
        )

    async def list_consents(self, user: User) -> list[tuple[Consent, Client | None]]:
        return [
            (c, await self._clients.get(c.client_id)) for c in await self._consents.list_for_user(user.id)
        ]

    async def revoke_consent(self, user: User, client_id: str, *, context: RequestContext) -> bool:
        """Forget the consent and end the application's grants for the user (core.revocation: its
        refresh and access tokens stop, and it is told of every session it held, so it signs the person
        out too).

        Returns:
            Whether there was a consent to revoke.
        """
        removed = await self._consents.delete(user.id, client_id)
        if removed:
            await self._revoker.end_access(
                Reach.application(user.id, client_id), cause=Cause.CONSENT_WITHDRAWN, context=context
            )
            await self._audit.record(
                AuditKind.CONSENT_REVOKED, user_id=user.id, context=context, client=client_id
            )
        return removed
