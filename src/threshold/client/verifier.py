"""TokenVerifier: verifies Threshold's RFC 9068 access tokens in the application's own process.

Keys come from the issuer's discovery document and JWKS and are cached (client.keys); an unknown `kid`
triggers a refetch at most once per `refetch_interval`. Every check is explicit (RFC 9068 section 4,
RFC 8725): an algorithm allow-list (never `none`, never HMAC), `typ` at+jwt, issuer, audience, expiry and
not-before with a small leeway, and no header may bring key material of its own (jku, x5u, jwk, x5c) or
critical extensions.

Offline (the default) a token is good until its `exp`, whatever happens to its grant meanwhile. Online
(`introspection=Introspection(...)`) a token that passes every offline check is also introspected at
the provider (RFC 7662, client.introspection), which refuses it once it was revoked or its session,
refresh family, user or client has ended; a positive answer is reused for `cache_seconds`, the bound on
how long a revoked token is still accepted. Online checks fail closed: no clear answer from the
provider is DiscoveryFailed (503 through ThresholdAuth), never "valid".
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from threshold.client._diagnosis import (
    MAX_TOKEN_BYTES,
    SEND_AS_ISSUED,
    malformed,
    shown,
    unknown_key,
    wrong_audience,
    wrong_type,
)
from threshold.client.errors import (
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    MalformedToken,
    MissingScope,
    NotYetValid,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongIssuer,
)
from threshold.client.introspection import MAX_CACHE_SECONDS, MAX_CACHED_ANSWERS, ActiveCheck, Introspection
from threshold.client.keys import IssuerKeys

DEFAULT_ALGORITHMS = ("Ed25519", "ES256", "RS256")
ASYMMETRIC = frozenset({"Ed25519", "EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256"})
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
KEY_TYPES = {"Ed25519": "OKP", "EdDSA": "OKP", "ES256": "EC", "ES384": "EC", "ES512": "EC"}
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


def _b64decode(value: bytes) -> bytes:
    return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What the token proved: who (`subject`), for which client, with which scopes, until when."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    expires_at: int
    claims: Mapping[str, Any] = field(repr=False)

    def require_scopes(self, *required: str) -> VerifiedToken:
        missing = [s for s in required if s not in self.scopes]
        if missing:
            held = " ".join(sorted(self.scopes)) or "none"
            raise MissingScope(
                f"the token lacks the required scope{'s' * (len(missing) > 1)} {' '.join(missing)} "
                f"(required: {' '.join(required)}; the token has: {held}): request a token with "
                f"{' '.join(missing)} in its scope parameter, for a client that is allowed "
                f"{'them' if len(missing) > 1 else 'it'}",
                expected=required,
                actual=self.scopes,
            )
        return self


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str],
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        refetch_interval: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
        jwks: Mapping[str, Any] | None = None,
        introspection: Introspection | None = None,
    ) -> None:
        """Offline by default; online with `introspection` (see Introspection).

        Without `http_client`, discovery uses a short-lived client per fetch and the online mode keeps
        one of its own, closed by `aclose()`.
        """
        algs = tuple(algorithms)
        if not algs or not set(algs) <= ASYMMETRIC:
            raise ValueError("algorithms must be a non-empty list of asymmetric JWS algorithms")
        self.issuer = issuer.rstrip("/")
        self._audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self._audiences:
            raise ValueError("audience must name at least one audience: this API's identifier")
        self._algorithms = frozenset(algs)
        registry = JWSRegistry(algorithms=algs)
        self._alg_models = {alg: registry.get_alg(alg) for alg in algs}
        self._leeway = leeway
        self._keys = IssuerKeys(
            issuer=self.issuer, refetch_interval=refetch_interval, http_client=http_client, jwks=jwks
        )
        self._online = (
            ActiveCheck(introspection, keys=self._keys, http_client=http_client)
            if introspection is not None
            else None
        )

    async def refresh_keys(self) -> None:
        """Fetch the discovery document (once) and the JWKS."""
        await self._keys.refresh()

    def verify(self, token: str | bytes) -> VerifiedToken:
        """Verify with the cached keys only (no I/O). Raises a TokenError subclass.

        Raises:
            KeysNotLoaded: no keys yet (neither `jwks=` nor a fetch); `averify()` fetches them.
            RuntimeError: the verifier is online: only `averify()` can ask the provider.
        """
        if self._online is not None:
            raise RuntimeError(
                "this TokenVerifier is online (introspection=...): verify() does no I/O and so cannot ask "
                "the provider whether the token is still active; use `await verifier.averify(token)`"
            )
        return self._verify_offline(token)

    def _verify_offline(self, token: str | bytes) -> VerifiedToken:
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        if raw.count(b".") != 2 or len(raw) > MAX_TOKEN_BYTES:
            raise malformed(token)
        try:
            compact = jws.extract_compact(raw)
            header = compact.headers()
        except (JoseError, ValueError, UnicodeDecodeError) as exc:
            raise malformed(token) from exc
        if not isinstance(header, dict):
            raise malformed(token)
        if FORBIDDEN_HEADERS & header.keys():
            raise ForbiddenHeader(
                f"the token header carries {', '.join(sorted(FORBIDDEN_HEADERS & header.keys()))}: a token "
                "may not bring its own keys (jku, x5u, jwk, x5c) or critical extensions (crit), and "
                f"{self.issuer} never issues one that does; this token is forged or from another issuer"
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise UnsupportedAlgorithm(
                f"the token is signed with alg {shown(alg)}, which this verifier does not accept (it "
                f"accepts {', '.join(sorted(self._algorithms))}; never none or HMAC): if the issuer signs "
                "with another asymmetric algorithm, list it in TokenVerifier(algorithms=...)"
            )
        typ = header.get("typ")
        if str(typ or "").lower() not in ACCESS_TOKEN_TYPES:
            raise wrong_type(typ)
        kid = header.get("kid")
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise unknown_key(
                kid,
                issuer=self.issuer,
                loaded=self._keys.loaded,
                held=self._keys,
                refetch_interval=self._keys.refetch_interval,
            )
        key, key_alg = entry
        if key_alg is not None and key_alg != alg:
            raise UnsupportedAlgorithm(
                f"the issuer publishes key {shown(kid)} for {key_alg}, the token says alg {alg}: the "
                "token is forged or damaged"
            )
        expected_kty = KEY_TYPES.get(str(alg), "RSA")
        if key.key_type != expected_kty:
            raise UnsupportedAlgorithm(
                f"key {shown(kid)} is an {key.key_type} key, alg {alg} needs an {expected_kty} key: the "
                "token is forged or damaged"
            )
        segments = compact.segments
        try:
            signature = _b64decode(segments["signature"])
            valid = self._alg_models[str(alg)].verify(
                segments["header"] + b"." + segments["payload"], signature, key
            )
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidSignature(
                f"the signature (part 3 of 3) is not a {alg} signature (not base64url, or the wrong "
                f"length): the token was damaged; {SEND_AS_ISSUED}"
            ) from exc
        if not valid:
            raise InvalidSignature(
                f"the signature does not match key {shown(kid)} of {self.issuer}: the token was altered "
                "after it was signed, or signed by someone else; get a new token from the issuer"
            )
        try:
            claims = json.loads(compact.payload)
        except ValueError as exc:
            raise MalformedToken("the payload (part 2 of 3) is not JSON", part="payload") from exc
        if not isinstance(claims, dict):
            raise MalformedToken("the payload (part 2 of 3) is JSON but not an object", part="payload")
        return self._check_claims(claims)

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        issuer = claims.get("iss")
        if issuer != self.issuer:
            raise WrongIssuer(
                f"the token was issued by {shown(issuer)}, this verifier trusts {self.issuer!r}: get the "
                f"token from {self.issuer}, or set TokenVerifier(issuer=...) to the issuer that issued it",
                expected=self.issuer,
                actual=issuer if isinstance(issuer, str) else None,
            )
        audience = claims.get("aud")
        listed = audience if isinstance(audience, list) else [audience]
        audiences = {a for a in listed if isinstance(a, str)}
        if not audiences & self._audiences:
            raise wrong_audience(audience, audiences, accepted=self._audiences)
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not math.isfinite(exp):
            raise MalformedToken(
                "the token has no exp, or it is not a number (RFC 9068 section 2.2 requires it): it is "
                "not an access token the issuer issued",
                part="claims",
            )
        if exp + self._leeway <= now:
            raise Expired(
                f"the token expired {int(now - exp)} s ago (exp {int(exp)}; the leeway is "
                f"{self._leeway} s): get a new access token (refresh it, or request a new one)"
            )
        if isinstance(nbf, int | float) and nbf - self._leeway > now:
            raise NotYetValid(
                f"the token is valid only in {nbf - now:.0f} s ({'nbf' if 'nbf' in claims else 'iat'} "
                f"{nbf:.0f}; the leeway is {self._leeway} s): the clocks of the issuer and of this "
                "service disagree; synchronise them (NTP)"
            )
        subject, client_id = claims.get("sub"), claims.get("client_id")
        if not isinstance(subject, str) or not isinstance(client_id, str):
            raise MalformedToken(
                "the token lacks sub or client_id as strings (RFC 9068 section 2.2 requires both): it is "
                "not an access token the issuer issued",
                part="claims",
            )
        scope = claims.get("scope", "")
        return VerifiedToken(
            subject=subject,
            client_id=client_id,
            scopes=frozenset(str(scope).split()),
            expires_at=int(exp),
            claims=claims,
        )

    async def averify(self, token: str | bytes) -> VerifiedToken:
        """Verify, fetching the issuer's keys first if needed and once more for an unknown kid; online,
        then ask the provider whether the token is still active (or reuse a recent positive answer).

        Raises:
            Revoked: online, the provider says the token is no longer active.
            DiscoveryFailed: keys, metadata or (online) the provider's answer could not be had.
        """
        await self._keys.load_if_empty()
        try:
            verified = self._verify_offline(token)
        except UnknownKey as exc:
            if exc.kid is None or len(exc.kid) > 128:
                raise
            await self._keys.refetch_for(exc.kid)
            verified = self._verify_offline(token)
        if self._online is not None:
            raw = token if isinstance(token, str) else token.decode("ascii", "replace")
            await self._online.confirm_active(raw)
        return verified

    async def aclose(self) -> None:
        """Close the HTTP client the online mode opened for itself (not one passed in)."""
        if self._online is not None:
            await self._online.aclose()


__all__ = [
    "ACCESS_TOKEN_TYPES",
    "ASYMMETRIC",
    "DEFAULT_ALGORITHMS",
    "FORBIDDEN_HEADERS",
    "KEY_TYPES",
    "MAX_CACHED_ANSWERS",
    "MAX_CACHE_SECONDS",
    "MAX_TOKEN_BYTES",
    "SEND_AS_ISSUED",
    "Introspection",
    "TokenVerifier",
    "VerifiedToken",
]
