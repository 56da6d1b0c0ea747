"""The client_credentials grant (RFC 6749 section 4.4): a confidential client's own access token, for
no user, with no refresh token (section 4.4.3) and no ID token."""

from __future__ import annotations

from collections.abc import Mapping

from threshold.oidc.errors import InvalidClient, InvalidScope, UnauthorizedClient
from threshold.oidc.grants.policy import AccessTokenPolicy
from threshold.oidc.live_grant import GrantCheck
from threshold.oidc.models import Client, TokenResponse
from threshold.oidc.organization import ORG_ADMIN_SCOPE, ORGANIZATION_SCOPE
from threshold.oidc.tokens import TokenMinter

USER_SCOPES = ("openid", "offline_access", "email", "profile", ORGANIZATION_SCOPE, ORG_ADMIN_SCOPE)
"""Scopes about a user, which a client's own token never carries."""


class ClientCredentialsGrant:
    def __init__(self, *, minter: TokenMinter, grants: GrantCheck, policy: AccessTokenPolicy) -> None:
        self._minter = minter
        self._grants = grants
        self._policy = policy

    async def exchange(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """RFC 6749 section 4.4.2: the client's allowed scopes (its non-user ones), or fewer on request.

        Raises:
            UnauthorizedClient: a public client (section 4.4: confidential clients only).
            InvalidScope: a scope the client may not have.
            InvalidClient: the client was deleted since it authenticated.
        """
        if client.public:
            raise UnauthorizedClient()
        requested = form.get("scope")
        allowed = [s for s in client.scopes if s not in USER_SCOPES]
        scopes = list(dict.fromkeys(requested.split())) if requested else allowed
        if not set(scopes) <= set(allowed):
            raise InvalidScope()
        scope = " ".join(scopes)
        if await self._grants.client_grant(client.client_id) is None:  # deleted since it authenticated
            raise InvalidClient()
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=client.client_id,
            client_id=client.client_id,
            audience=self._policy.audience(form, scopes),
            scope=scope,
            lifetime=self._policy.lifetime(client),
        )
        return TokenResponse(access_token=access.token, expires_in=access.expires_in, scope=scope)
