"""The token endpoint (RFC 6749 section 3.2): authenticate the client (section 2.3, OIDC Core 9), then
hand the request to the grant its `grant_type` names (oidc.grants).

Client authentication here is also that of the revocation (RFC 7009 section 2.1) and introspection
(RFC 7662 section 2.1) endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

from threshold.core.clock import Clock
from threshold.oidc.client_auth import ClientCredentials, authenticate_client
from threshold.oidc.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from threshold.oidc.grants import TokenGrant
from threshold.oidc.models import Client, GrantType, TokenResponse
from threshold.oidc.ports import ClientRepo, MarkStore

GRANT_TYPES = frozenset(g.value for g in GrantType)


class ClientAuthenticator:
    def __init__(self, *, issuer: str, clients: ClientRepo, marks: MarkStore, clock: Clock) -> None:
        self._issuer = issuer
        self._clients = clients
        self._marks = marks
        self._clock = clock

    @property
    def token_endpoint(self) -> str:
        return f"{self._issuer}/oauth2/token"

    async def authenticate(self, credentials: ClientCredentials) -> Client:
        """The client the credentials prove (see oidc.client_auth). A private_key_jwt assertion is for
        the issuer (RFC 7523 as updated by RFC 10070); one for the token endpoint is still accepted.

        Raises:
            InvalidClient: the credentials prove no client.
        """
        return await authenticate_client(
            credentials,
            clients=self._clients,
            marks=self._marks,
            clock=self._clock,
            expected_audience=self._issuer,
            legacy_audience=self.token_endpoint,
        )


class TokenEndpoint:
    def __init__(self, *, authenticator: ClientAuthenticator, grants: Mapping[GrantType, TokenGrant]) -> None:
        self._authenticator = authenticator
        self._grants = grants

    async def token(self, form: Mapping[str, str], credentials: ClientCredentials) -> TokenResponse:
        """RFC 6749 section 3.2: dispatch on grant_type after authenticating the client.

        Raises:
            InvalidRequest: no grant_type.
            UnsupportedGrantType: a grant_type this provider does not implement (section 5.2).
            UnauthorizedClient: a grant_type the client is not registered for (section 5.2).
            OAuthError: the client's authentication or the grant failed.
        """
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required.")
        if grant_type not in GRANT_TYPES:
            raise UnsupportedGrantType()
        client = await self._authenticator.authenticate(credentials)
        if GrantType(grant_type) not in client.grant_types:
            raise UnauthorizedClient()
        return await self._grants[GrantType(grant_type)].exchange(client, form)
