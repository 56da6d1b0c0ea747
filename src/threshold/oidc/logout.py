"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): where the browser goes afterwards. (The
session and the tokens that rested on it end through core.revocation, as every logout does.)"""

from __future__ import annotations

from typing import Any

from threshold.oidc.errors import InvalidRequest
from threshold.oidc.ports import ClientRepo
from threshold.oidc.redirects import add_query
from threshold.oidc.tokens import TokenMinter


class Logout:
    def __init__(self, *, minter: TokenMinter, clients: ClientRepo) -> None:
        self._minter = minter
        self._clients = clients

    async def logout_target(
        self,
        *,
        id_token_hint: str | None,
        client_id: str | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
    ) -> tuple[str | None, dict[str, Any] | None]:
        """OIDC RP-Initiated Logout 1.0 section 2-3: where to go afterwards, and the hint's claims.

        Raises:
            InvalidRequest: a post_logout_redirect_uri that is not registered for the client.
        """
        claims = await self._minter.logout_hint_claims(id_token_hint) if id_token_hint else None
        if id_token_hint and claims is None:
            raise InvalidRequest("id_token_hint is not an ID token from this provider.")
        audience = claims.get("aud") if claims else None
        hinted = audience if isinstance(audience, str) else None
        if client_id and hinted and client_id != hinted:
            raise InvalidRequest("client_id does not match the id_token_hint.")
        target_client = client_id or hinted
        if post_logout_redirect_uri is None:
            return None, claims
        client = await self._clients.get(target_client) if target_client else None
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client.")
        return add_query(post_logout_redirect_uri, {"state": state}), claims
