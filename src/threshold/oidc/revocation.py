"""Token revocation (RFC 7009): a client revokes one of its own tokens. (The end of a person's access,
whatever its cause, is core.revocation's.)

A refresh token revokes its whole family (RFC 7009 section 2.1); an access token is marked revoked
until it expires (oidc.resource.revoked_mark). A client revokes only its own tokens, and an unknown or
invalid token is answered like a revoked one (section 2.2).
"""

from __future__ import annotations

from collections.abc import Mapping

from threshold.core.clock import Clock
from threshold.core.secrets import digest
from threshold.oidc.client_auth import ClientCredentials
from threshold.oidc.errors import InvalidRequest, InvalidToken
from threshold.oidc.ports import MarkStore, RefreshTokenRepo
from threshold.oidc.resource import ResourceServer, revoked_mark
from threshold.oidc.token_endpoint import ClientAuthenticator


class Revocation:
    def __init__(
        self,
        *,
        authenticator: ClientAuthenticator,
        refresh_tokens: RefreshTokenRepo,
        marks: MarkStore,
        resource: ResourceServer,
        clock: Clock,
    ) -> None:
        self._authenticator = authenticator
        self._refresh = refresh_tokens
        self._marks = marks
        self._resource = resource
        self._clock = clock

    async def revoke(self, form: Mapping[str, str], credentials: ClientCredentials) -> None:
        """RFC 7009: revoke a refresh token (its whole family) or an access token; unknown tokens are fine.

        Raises:
            InvalidClient: the client did not authenticate.
            InvalidRequest: no token.
        """
        client = await self._authenticator.authenticate(credentials)
        value = form.get("token")
        if not value:
            raise InvalidRequest("token is required.")
        now = self._clock.now()
        if len(value) <= 128:
            token = await self._refresh.get(digest(value))
            if token is not None:
                if token.client_id == client.client_id:
                    await self._refresh.revoke_family(token.family_id, now=now)
                return
        try:
            verified = await self._resource.verify_issued_token(value)
        except InvalidToken:
            return
        if verified.claims.get("client_id") == client.client_id:
            await self._marks.add(
                revoked_mark(verified.claims["jti"]), expires_at=float(verified.claims["exp"]) + 5
            )
