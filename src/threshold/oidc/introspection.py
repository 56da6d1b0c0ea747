"""Token introspection (RFC 7662), for confidential clients only.

`active` is true only while the token would still be honoured: a refresh token unused, unexpired and
with its grant live (oidc.live_grant), an access token passing every check of oidc.resource for any
audience this provider issues (RFC 7662 section 2.2: false for a token "revoked ... or otherwise
invalidated"). A token issued for an organization is active only while its user is a member there, and
its answer has the organization's claims with the role as it is now (oidc.organization).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threshold.core.clock import Clock
from threshold.core.secrets import digest
from threshold.oidc.client_auth import ClientCredentials
from threshold.oidc.errors import InvalidClient, InvalidRequest, InvalidToken
from threshold.oidc.live_grant import GrantCheck, LiveGrant
from threshold.oidc.models import RefreshToken
from threshold.oidc.organization import ORGANIZATION_SCOPE
from threshold.oidc.ports import RefreshTokenRepo
from threshold.oidc.resource import ResourceServer
from threshold.oidc.token_endpoint import ClientAuthenticator

ACCESS_TOKEN_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti")
"""The claims of an active access token that the answer repeats (RFC 7662 section 2.2)."""


class TokenIntrospection:
    def __init__(
        self,
        *,
        issuer: str,
        authenticator: ClientAuthenticator,
        refresh_tokens: RefreshTokenRepo,
        grants: GrantCheck,
        resource: ResourceServer,
        clock: Clock,
    ) -> None:
        self._issuer = issuer
        self._authenticator = authenticator
        self._refresh = refresh_tokens
        self._grants = grants
        self._resource = resource
        self._clock = clock

    async def introspect(self, form: Mapping[str, str], credentials: ClientCredentials) -> dict[str, Any]:
        """RFC 7662 section 2.1-2.2, for confidential clients only.

        Raises:
            InvalidClient: the client did not authenticate, or is public.
            InvalidRequest: no token.
        """
        client = await self._authenticator.authenticate(credentials)
        if client.public:
            raise InvalidClient()
        value = form.get("token")
        if not value:
            raise InvalidRequest("token is required.")
        now = self._clock.now()
        if len(value) <= 128:
            token = await self._refresh.get(digest(value))
            if token is not None:
                return await self._refresh_token_answer(token, now=now)
        try:
            verified = await self._resource.verify_issued_token(value)
        except InvalidToken:
            return {"active": False}
        claims = verified.claims
        return {
            "active": True,
            "token_type": "Bearer",
            **{k: claims[k] for k in ACCESS_TOKEN_CLAIMS if k in claims},
            **_org_claims(verified.grant, verified.scopes),
        }

    async def _refresh_token_answer(self, token: RefreshToken, *, now: float) -> dict[str, Any]:
        live = None
        if token.used_at is None and token.expires_at > now:
            live = await self._grants.user_grant(
                client_id=token.client_id,
                user_id=token.user_id,
                session_digest=token.session_digest,
                revoked=token.revoked_at is not None,
                org_id=token.org_id,
            )
        if live is None:
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.user_id,
            "exp": int(token.expires_at),
            "iat": int(token.created_at),
            "iss": self._issuer,
            **_org_claims(live, frozenset(token.scope.split())),
        }


def _org_claims(grant: LiveGrant | None, scopes: frozenset[str]) -> dict[str, str]:
    """The organization's claims of a token with the organization scope, the role as it is now."""
    if grant is None or grant.org is None or ORGANIZATION_SCOPE not in scopes:
        return {}
    return grant.org.claims()
