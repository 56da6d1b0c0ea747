"""The token endpoint's grants, one module each (RFC 6749 section 4 and 6):

- authorization_code: the code exchange (RFC 6749 section 4.1.3, RFC 7636, OIDC Core 3.1.3),
- refresh_token: refresh with rotation and reuse detection (RFC 6749 section 6, RFC 9700 section 4.14.2),
- client_credentials: a client's own access token (RFC 6749 section 4.4).

Each grant checks that what it extends still stands through oidc.live_grant, and mints access tokens
under one policy (grants.policy). oidc.token_endpoint authenticates the client and picks the grant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from threshold.oidc.models import Client, TokenResponse


class TokenGrant(Protocol):
    async def exchange(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """The tokens for an authenticated client allowed this grant type, from the request's form.

        Raises:
            OAuthError: the grant is invalid (RFC 6749 section 5.2).
        """
        ...
