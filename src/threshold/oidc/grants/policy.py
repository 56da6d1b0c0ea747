"""What every grant's access token gets: its audience (RFC 8707 resource indicators, restricted to the
configured ones) and its lifetime (the client's, capped by tokens.MAX_ACCESS_TOKEN_LIFETIME)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from threshold.oidc.errors import InvalidRequest
from threshold.oidc.models import Client
from threshold.oidc.tokens import MAX_ACCESS_TOKEN_LIFETIME
from threshold.settings import OidcSettings


class AccessTokenPolicy:
    def __init__(self, *, issuer: str, settings: OidcSettings) -> None:
        self._issuer = issuer
        self._settings = settings

    def audience(self, form: Mapping[str, str], scopes: Sequence[str]) -> list[str]:
        """RFC 8707 section 2 `resource`, restricted to the configured resource indicators.

        Raises:
            InvalidRequest: (code invalid_target, RFC 8707 section 2) a resource not configured here.
        """
        resource = form.get("resource")
        default = self._settings.default_audience or self._issuer
        if resource:
            if resource not in self._settings.audiences:
                error = InvalidRequest("Unknown resource.")
                error.code = "invalid_target"
                raise error
            audience = [resource]
        else:
            audience = [default]
        if "openid" in scopes and self._issuer not in audience:
            audience.append(self._issuer)  # so the same token reaches /oauth2/userinfo
        return audience

    def issued_audiences(self) -> frozenset[str]:
        """Every audience this provider issues access tokens for (see audience)."""
        configured = [self._settings.default_audience] if self._settings.default_audience else []
        return frozenset([self._issuer, *configured, *self._settings.audiences])

    def lifetime(self, client: Client) -> int:
        return min(
            client.access_token_lifetime or self._settings.access_token_lifetime, MAX_ACCESS_TOKEN_LIFETIME
        )
