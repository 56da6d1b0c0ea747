"""TokenVerifier: verifies Threshold's RFC 9068 access tokens in the application's own process.

Keys come from the issuer's discovery document and JWKS and are cached; an unknown `kid` triggers a
refetch at most once per `refetch_interval`. Every check is explicit: an algorithm allow-list (never
`none`, never HMAC), `typ` at+jwt, issuer, audience, expiry and not-before with a small leeway, and no
header may bring key material of its own (jku, x5u, jwk, x5c) or critical extensions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry

from threshold.client.errors import (
    DiscoveryFailed,
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    MalformedToken,
    MissingScope,
    NotYetValid,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongType,
)

DEFAULT_ALGORITHMS = ("Ed25519", "ES256", "RS256")
ASYMMETRIC = frozenset({"Ed25519", "EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256"})
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
KEY_TYPES = {"Ed25519": "OKP", "EdDSA": "OKP", "ES256": "EC", "ES384": "EC", "ES512": "EC"}


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
            raise MissingScope(f"missing scope: {' '.join(missing)}")
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
    ) -> None:
        algs = tuple(algorithms)
        if not algs or not set(algs) <= ASYMMETRIC:
            raise ValueError("algorithms must be a non-empty list of asymmetric JWS algorithms")
        self.issuer = issuer.rstrip("/")
        self._audiences = frozenset([audience] if isinstance(audience, str) else audience)
        self._algorithms = frozenset(algs)
        registry = JWSRegistry(algorithms=algs)
        self._alg_models = {alg: registry.get_alg(alg) for alg in algs}
        self._leeway = leeway
        self._refetch_interval = refetch_interval
        self._http = http_client
        self._keys: dict[str, tuple[Key, str | None]] = {}
        self._fetched_at = -1e9
        self._jwks_uri: str | None = None
        self._lock = asyncio.Lock()
        if jwks is not None:
            self._install(jwks)

    # --- keys -----------------------------------------------------------------------------------

    def _install(self, jwks: Mapping[str, Any]) -> None:
        keys: dict[str, tuple[Key, str | None]] = {}
        for entry in jwks.get("keys", []):
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            if any(private in entry for private in ("d", "p", "q", "k")):
                continue  # never trust a JWKS that carries private or symmetric material
            try:
                keys[str(entry["kid"])] = (import_key(entry), entry.get("alg"))
            except (JoseError, ValueError, TypeError):
                continue
        self._keys = keys

    async def _get(self, client: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await client.get(url, timeout=5.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DiscoveryFailed(f"could not fetch {url}: {type(exc).__name__}") from exc

    async def refresh_keys(self) -> None:
        """Fetch the discovery document (once) and the JWKS."""
        client = self._http or httpx.AsyncClient()
        try:
            if self._jwks_uri is None:
                metadata = await self._get(client, f"{self.issuer}/.well-known/openid-configuration")
                if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                    raise DiscoveryFailed("the discovery document names another issuer")
                self._jwks_uri = str(metadata["jwks_uri"])
            jwks = await self._get(client, self._jwks_uri)
            if not isinstance(jwks, dict):
                raise DiscoveryFailed("malformed JWKS")
            self._install(jwks)
            self._fetched_at = time.monotonic()
        finally:
            if self._http is None:
                await client.aclose()

    async def _refetch_for(self, kid: str) -> None:
        async with self._lock:
            if kid in self._keys or time.monotonic() - self._fetched_at < self._refetch_interval:
                return
            await self.refresh_keys()

    # --- verification ---------------------------------------------------------------------------

    def verify(self, token: str | bytes) -> VerifiedToken:
        """Verify with the cached keys only (no I/O). Raises a TokenError subclass."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        if raw.count(b".") != 2 or len(raw) > 16384:
            raise MalformedToken("not a compact JWS")
        try:
            compact = jws.extract_compact(raw)
            header = compact.headers()
        except (JoseError, ValueError, UnicodeDecodeError) as exc:
            raise MalformedToken("undecodable token") from exc
        if FORBIDDEN_HEADERS & header.keys():
            raise ForbiddenHeader("the token carries key material or critical extensions")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise UnsupportedAlgorithm(f"algorithm {alg!r} is not allowed")
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise WrongType("not an access token (typ at+jwt)")
        kid = header.get("kid")
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise UnknownKey("no published key has this kid")
        key, key_alg = entry
        if key_alg is not None and key_alg != alg:
            raise UnsupportedAlgorithm("the key is published for another algorithm")
        expected_kty = KEY_TYPES.get(str(alg), "RSA")
        if key.key_type != expected_kty:
            raise UnsupportedAlgorithm("the key type does not fit the algorithm")
        segments = compact.segments
        try:
            signature = _b64decode(segments["signature"])
            valid = self._alg_models[str(alg)].verify(
                segments["header"] + b"." + segments["payload"], signature, key
            )
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidSignature("signature check failed") from exc
        if not valid:
            raise InvalidSignature("bad signature")
        try:
            claims = json.loads(compact.payload)
        except ValueError as exc:
            raise MalformedToken("payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise MalformedToken("payload is not a JSON object")
        return self._check_claims(claims)

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        if claims.get("iss") != self.issuer:
            raise WrongIssuer("issued by someone else")
        audience = claims.get("aud")
        listed = audience if isinstance(audience, list) else [audience]
        audiences = {a for a in listed if isinstance(a, str)}
        if not audiences & self._audiences:
            raise WrongAudience("not meant for this audience")
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise MalformedToken("exp is missing")
        if exp + self._leeway <= now:
            raise Expired("the token has expired")
        if isinstance(nbf, int | float) and nbf - self._leeway > now:
            raise NotYetValid("the token is not valid yet")
        subject, client_id = claims.get("sub"), claims.get("client_id")
        if not isinstance(subject, str) or not isinstance(client_id, str):
            raise MalformedToken("sub and client_id are required")
        scope = claims.get("scope", "")
        return VerifiedToken(
            subject=subject,
            client_id=client_id,
            scopes=frozenset(str(scope).split()),
            expires_at=int(exp),
            claims=claims,
        )

    async def averify(self, token: str | bytes) -> VerifiedToken:
        """Verify, fetching the issuer's keys first if needed and once more for an unknown kid."""
        if not self._keys and time.monotonic() - self._fetched_at >= self._refetch_interval:
            async with self._lock:
                if not self._keys:
                    await self.refresh_keys()
        try:
            return self.verify(token)
        except UnknownKey:
            raw = token if isinstance(token, str) else token.decode("ascii", "replace")
            try:
                kid = jws.extract_compact(raw.encode()).headers().get("kid")
            except (JoseError, ValueError):
                raise
            if not isinstance(kid, str) or len(kid) > 128:
                raise
            await self._refetch_for(kid)
            return self.verify(token)
