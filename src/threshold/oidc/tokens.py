"""Token minting: RFC 9068 access tokens and OIDC Core ID tokens, signed with the active key."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt

from threshold.core.clock import Clock
from threshold.core.secrets import new_id
from threshold.oidc.keys import KeyRing

ID_TOKEN_LIFETIME = 600
MAX_ACCESS_TOKEN_LIFETIME = 900
LOGOUT_TOKEN_LIFETIME = 120
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ACCOUNT_PURGED_EVENT = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
"""OpenID RISC 1.0: the account was deleted at the transmitter (here: its data erased)."""
GRANT_CLAIM = "grant_id"
"""The access-token claim naming the grant it was issued under (a private claim: RFC 9068 has none)."""


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int
    expires_at: float


def token_hash(value: str, alg: str) -> str:
    """at_hash / c_hash (OIDC Core 3.1.3.6): left half of the hash, base64url.

    The hash is the one of the JWS algorithm: SHA-256 for ES256/RS256, SHA-512 for Ed25519 (RFC 9864).
    """
    digest = (hashlib.sha512 if alg in ("Ed25519", "EdDSA") else hashlib.sha256)(
        value.encode("ascii")
    ).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


@functools.cache
def _registry(alg: str) -> jws.JWSRegistry:
    """The one algorithm a key signs with (what `algorithms=[alg]` builds on every call, built once)."""
    return jws.JWSRegistry(algorithms=[alg])


_HEADER_SEGMENTS: dict[tuple[str, str, str], bytes] = {}


def _header_segment(alg: str, kid: str, typ: str, key: Any) -> bytes:
    """The protected header's segment as joserfc's `jwt.encode` writes it (taken from a token it signs),
    the same for every token of this key id and type."""
    found = _HEADER_SEGMENTS.get((alg, kid, typ))
    if found is None:
        sample = jwt.encode({"alg": alg, "kid": kid, "typ": typ}, {}, key, registry=_registry(alg))
        found = sample.split(".", 1)[0].encode("ascii")
        if len(_HEADER_SEGMENTS) >= 1024:  # keys rotate; a long-lived process drops the old ones
            _HEADER_SEGMENTS.clear()
        _HEADER_SEGMENTS[(alg, kid, typ)] = found
    return found


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign_jwt(alg: str, kid: str, typ: str, claims: Mapping[str, Any], key: Any) -> str:
    """`jwt.encode({"alg", "kid", "typ"}, claims, key)`, byte for byte, without its per-call header
    checks and registry lookups (a third of a token's cost on the token endpoint): the header segment
    is joserfc's own, computed once per key and type; the payload is serialized as joserfc serializes
    it; the signature is joserfc's algorithm (tests/unit/test_sign_jwt.py compares both ways)."""
    signing_input = (
        _header_segment(alg, kid, typ, key)
        + b"."
        + _b64(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    )
    return (signing_input + b"." + _b64(_registry(alg).get_alg(alg).sign(signing_input, key))).decode("ascii")


class TokenMinter:
    def __init__(self, keys: KeyRing, clock: Clock, *, issuer: str) -> None:
        self._keys = keys
        self._clock = clock
        self._issuer = issuer

    async def _sign(self, alg: str, typ: str, claims: dict[str, Any]) -> str:
        kid, key = await self._keys.signing_key(alg)
        return sign_jwt(alg, kid, typ, claims, key)

    async def access_token(
        self,
        *,
        alg: str,
        subject: str,
        client_id: str,
        audience: Sequence[str],
        scope: str,
        lifetime: int,
        auth_time: float | None = None,
        acr: str | None = None,
        grant_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> IssuedAccessToken:
        """An RFC 9068 JWT: no personal data, only identifiers, scope and times.

        `grant_id` names the grant a user's token was issued under (an opaque id, see oidc.live_grant);
        a client's own token (client_credentials) has none. `extra`: claims of the granted scopes
        (the organization's, oidc.organization), never one of the claims above.
        """
        now = int(self._clock.now())
        lifetime = max(1, min(lifetime, MAX_ACCESS_TOKEN_LIFETIME))
        jti = new_id()
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "client_id": client_id,
            "scope": scope,
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if acr is not None:
            claims["acr"] = acr
        if grant_id is not None:
            claims[GRANT_CLAIM] = grant_id
        for name, value in (extra or {}).items():
            claims.setdefault(name, value)
        token = await self._sign(alg, "at+jwt", claims)
        return IssuedAccessToken(token=token, jti=jti, expires_in=lifetime, expires_at=now + lifetime)

    async def id_token(
        self,
        *,
        alg: str,
        subject: str,
        client_id: str,
        auth_time: float,
        acr: str,
        amr: Sequence[str],
        sid: str,
        nonce: str | None,
        access_token: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": client_id,
            "azp": client_id,
            "exp": now + ID_TOKEN_LIFETIME,
            "iat": now,
            "auth_time": int(auth_time),
            "acr": acr,
            "amr": list(amr),
            "sid": sid,
            "jti": new_id(),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = token_hash(access_token, alg)
        if extra:
            claims.update(extra)
        return await self._sign(alg, "JWT", claims)

    async def logout_token(self, *, alg: str, subject: str, client_id: str, sid: str | None, jti: str) -> str:
        """An OIDC Back-Channel Logout 1.0 logout token (section 2.4): `iss`, `aud`, `iat`, `exp`, `jti`,
        `events`, `sub` and the session's `sid` (the one its ID tokens carry), never a `nonce`; typed
        `logout+jwt` (section 2.4, so that it cannot pass for an ID token)."""
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_LIFETIME,
            "jti": jti,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        if sid is not None:
            claims["sid"] = sid
        return await self._sign(alg, "logout+jwt", claims)

    async def account_purged_event(self, *, alg: str, subject: str, client_id: str, jti: str) -> str:
        """A Security Event Token (RFC 8417) for one application: the person `subject` (the `sub` its
        tokens carried, in the RFC 9493 `iss_sub` format) had their account erased. Typed
        `secevent+jwt` (RFC 8417 section 2.3), no `exp` or `sub` claim of its own (section 2.2)."""
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": client_id,
            "iat": int(self._clock.now()),
            "jti": jti,
            "events": {
                ACCOUNT_PURGED_EVENT: {"subject": {"format": "iss_sub", "iss": self._issuer, "sub": subject}}
            },
        }
        return await self._sign(alg, "secevent+jwt", claims)

    async def logout_hint_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of one of our own ID tokens (signature checked, expiry not: OIDC RP-Initiated 1.0 §2)."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except Exception:
            return None
        kid = header.get("kid")
        alg = header.get("alg")
        if not isinstance(kid, str) or alg not in ("Ed25519", "ES256", "RS256"):
            return None
        key = await self._keys.verification_key(kid)
        if key is None:
            return None
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except Exception:
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self._issuer:
            return None
        return claims
