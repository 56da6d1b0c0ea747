"""The provider as a resource server of its own access tokens: verification (RFC 9068 section 4) for
userinfo (OIDC Core 5.3), the admin API, introspection and revocation.

A token is good only while its signature, `typ`, issuer, audience and expiry hold, no revocation mark
names its `jti`, and the grant it rests on still stands (oidc.live_grant).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from threshold.core.clock import Clock
from threshold.oidc.errors import InvalidToken
from threshold.oidc.keys import KeyRing
from threshold.oidc.live_grant import GrantCheck, LiveGrant
from threshold.oidc.models import SIGNING_ALGORITHMS
from threshold.oidc.organization import ORGANIZATION_SCOPE
from threshold.oidc.ports import MarkStore

ADMIN_SCOPE = "threshold:admin"
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 section 4
MAX_ACCESS_TOKEN_BYTES = 8192


def revoked_mark(jti: str) -> str:
    """The mark that revokes one access token before its `exp`: by RFC 7009 revocation, or as a token
    issued from a replayed code (RFC 6749 section 4.1.2)."""
    return f"revoked-at:{jti}"


@dataclass(frozen=True, slots=True)
class VerifiedAccessToken:
    """An access token we issued, with a valid signature, unexpired, not revoked, and its grant live."""

    claims: dict[str, Any]
    grant: LiveGrant | None = None
    """What the token rests on, as checked just now (see oidc.live_grant)."""

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())


class ResourceServer:
    def __init__(
        self,
        *,
        issuer: str,
        keys: KeyRing,
        marks: MarkStore,
        grants: GrantCheck,
        clock: Clock,
        issued_audiences: Collection[str] = (),
    ) -> None:
        self._issuer = issuer
        self._issued_audiences = frozenset([issuer, *issued_audiences])
        self._keys = keys
        self._marks = marks
        self._grants = grants
        self._clock = clock

    async def verify_issued_token(self, token: str) -> VerifiedAccessToken:
        """A token this provider issued, for any audience it issues tokens for: what introspection
        (RFC 7662) answers for and revocation (RFC 7009) accepts, the one rule for both."""
        return await self.verify_access_token(token, expected_audiences=self._issued_audiences)

    async def verify_access_token(
        self, token: str, *, expected_audiences: Collection[str] | None = None
    ) -> VerifiedAccessToken:
        """Our signature, typ at+jwt, our issuer, an expected audience (by default the issuer itself:
        userinfo, the admin API), unexpired, not revoked, and its grant live now (oidc.live_grant).

        Raises:
            InvalidToken: any of it does not hold.
        """
        if not token or len(token) > MAX_ACCESS_TOKEN_BYTES:
            raise InvalidToken()
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise InvalidToken() from exc
        alg, kid = header.get("alg"), header.get("kid")
        if (
            alg not in SIGNING_ALGORITHMS
            or not isinstance(kid, str)
            or str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES
        ):
            raise InvalidToken()
        key = await self._keys.verification_key(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims = dict(jwt.decode(token, key, algorithms=[alg]).claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken() from exc
        now = self._clock.now()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        expected = {self._issuer} if expected_audiences is None else set(expected_audiences)
        exp = claims.get("exp")
        if (
            claims.get("iss") != self._issuer
            or not any(isinstance(a, str) and a in expected for a in audiences)
            or not isinstance(exp, int | float)
            or exp <= now - 5
            or not isinstance(claims.get("jti"), str)
        ):
            raise InvalidToken()
        if await self._marks.exists(revoked_mark(claims["jti"]), now=now):
            raise InvalidToken()
        grant = await self._grants.access_token_grant(claims)
        if grant is None:
            raise InvalidToken()
        return VerifiedAccessToken(claims, grant)

    async def userinfo(self, token: str) -> dict[str, Any]:
        """OIDC Core 5.3: claims about the user, for a token with the openid scope and a live grant; with
        the organization scope, the organization's claims and the role as it is now (oidc.organization)."""
        verified = await self.verify_access_token(token)
        if "openid" not in verified.scopes:
            raise InvalidToken("The access token lacks the openid scope.")
        user = verified.grant.user if verified.grant else None
        if user is None or user.disabled:
            raise InvalidToken()
        claims: dict[str, Any] = {"sub": user.id}
        if "email" in verified.scopes:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        org = verified.grant.org if verified.grant else None
        if ORGANIZATION_SCOPE in verified.scopes and org is not None:
            claims.update(org.claims())
        return claims
