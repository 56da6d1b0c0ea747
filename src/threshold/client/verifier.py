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
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from threshold.client.errors import (
    DiscoveryFailed,
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    KeysNotLoaded,
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
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
MAX_TOKEN_BYTES = 16384
SEND_AS_ISSUED = "send the access_token exactly as the token endpoint returned it"


def _b64decode(value: bytes) -> bytes:
    return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))


def _shown(value: object, limit: int = 80) -> str:
    """A value taken from a token, quoted and cut short: it is the sender's input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _listed(values: Iterable[str], limit: int = 5) -> str:
    shown = [_shown(v) for v in sorted(values)]
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


def _malformed(token: str | bytes) -> MalformedToken:
    """Which part of a token that did not decode is at fault. Called on the error path only."""
    raw = token.encode("utf-8", "replace") if isinstance(token, str) else token
    if not raw.strip():
        return MalformedToken(f"the token is empty: {SEND_AS_ISSUED}")
    if len(raw) > MAX_TOKEN_BYTES:
        return MalformedToken(
            f"the token is {len(raw)} bytes long, more than the {MAX_TOKEN_BYTES} this verifier reads: "
            f"{SEND_AS_ISSUED}"
        )
    if not raw.isascii():
        return MalformedToken(
            f"the token contains non-ASCII characters (a JWS is base64url text only): {SEND_AS_ISSUED}"
        )
    parts = raw.split(b".")
    if len(parts) != 3:
        return MalformedToken(
            f"the token has {len(parts)} dot-separated part{'s' * (len(parts) != 1)} where a JWS access "
            "token has 3 (header.payload.signature): send the access_token from the token response, "
            "not a refresh token, an opaque value or a fragment of a token"
        )
    try:
        header_json = urlsafe_b64decode(parts[0])
    except ValueError:
        return MalformedToken(
            "the header (part 1 of 3) is not base64url (URL-safe alphabet, no padding; RFC 7515 "
            f"section 2): {SEND_AS_ISSUED}",
            part="header",
        )
    try:
        header = json.loads(header_json)
    except ValueError:
        return MalformedToken(
            f"the header (part 1 of 3) is base64url but not JSON: {SEND_AS_ISSUED}", part="header"
        )
    if not isinstance(header, dict):
        return MalformedToken(
            f"the header (part 1 of 3) is JSON but not an object: {SEND_AS_ISSUED}", part="header"
        )
    if "alg" not in header:
        return MalformedToken(
            f"the header (part 1 of 3) has no alg (RFC 7515 section 4.1.1): {SEND_AS_ISSUED}", part="header"
        )
    try:
        urlsafe_b64decode(parts[1])
    except ValueError:
        return MalformedToken(
            f"the payload (part 2 of 3) is not base64url (URL-safe alphabet, no padding): {SEND_AS_ISSUED}",
            part="payload",
        )
    return MalformedToken(f"the token is not a readable compact JWS (RFC 7515 section 7.1): {SEND_AS_ISSUED}")


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
    ) -> None:
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
        self._refetch_interval = refetch_interval
        self._http = http_client
        self._keys: dict[str, tuple[Key, str | None]] = {}
        self._loaded = False
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
        self._loaded = True

    async def _get(self, client: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await client.get(url, timeout=5.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DiscoveryFailed(
                f"could not fetch {url} ({type(exc).__name__}): check that the issuer {self.issuer} is "
                "reachable from this service; the next averify() tries again"
            ) from exc

    async def refresh_keys(self) -> None:
        """Fetch the discovery document (once) and the JWKS."""
        client = self._http or httpx.AsyncClient()
        try:
            if self._jwks_uri is None:
                metadata = await self._get(client, f"{self.issuer}/.well-known/openid-configuration")
                announced = metadata.get("issuer") if isinstance(metadata, dict) else None
                if announced != self.issuer:
                    raise DiscoveryFailed(
                        f"the discovery document of {self.issuer} names the issuer {_shown(announced)}: "
                        "set TokenVerifier(issuer=...) to exactly the issuer that server announces"
                    )
                jwks_uri = metadata.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise DiscoveryFailed(f"the discovery document of {self.issuer} has no jwks_uri")
                self._jwks_uri = jwks_uri
            jwks = await self._get(client, self._jwks_uri)
            if not isinstance(jwks, dict):
                raise DiscoveryFailed(f"{self._jwks_uri} did not answer a JWKS (a JSON object with keys)")
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
        """Verify with the cached keys only (no I/O). Raises a TokenError subclass.

        Raises:
            KeysNotLoaded: no keys yet (neither `jwks=` nor a fetch); `averify()` fetches them.
        """
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        if raw.count(b".") != 2 or len(raw) > MAX_TOKEN_BYTES:
            raise _malformed(token)
        try:
            compact = jws.extract_compact(raw)
            header = compact.headers()
        except (JoseError, ValueError, UnicodeDecodeError) as exc:
            raise _malformed(token) from exc
        if not isinstance(header, dict):
            raise _malformed(token)
        if FORBIDDEN_HEADERS & header.keys():
            raise ForbiddenHeader(
                f"the token header carries {', '.join(sorted(FORBIDDEN_HEADERS & header.keys()))}: a token "
                "may not bring its own keys (jku, x5u, jwk, x5c) or critical extensions (crit), and "
                f"{self.issuer} never issues one that does; this token is forged or from another issuer"
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise UnsupportedAlgorithm(
                f"the token is signed with alg {_shown(alg)}, which this verifier does not accept (it "
                f"accepts {', '.join(sorted(self._algorithms))}; never none or HMAC): if the issuer signs "
                "with another asymmetric algorithm, list it in TokenVerifier(algorithms=...)"
            )
        typ = header.get("typ")
        if str(typ or "").lower() not in ACCESS_TOKEN_TYPES:
            raise self._wrong_type(typ)
        kid = header.get("kid")
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise self._unknown_key(kid)
        key, key_alg = entry
        if key_alg is not None and key_alg != alg:
            raise UnsupportedAlgorithm(
                f"the issuer publishes key {_shown(kid)} for {key_alg}, the token says alg {alg}: the "
                "token is forged or damaged"
            )
        expected_kty = KEY_TYPES.get(str(alg), "RSA")
        if key.key_type != expected_kty:
            raise UnsupportedAlgorithm(
                f"key {_shown(kid)} is an {key.key_type} key, alg {alg} needs an {expected_kty} key: the "
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
                f"the signature does not match key {_shown(kid)} of {self.issuer}: the token was altered "
                "after it was signed, or signed by someone else; get a new token from the issuer"
            )
        try:
            claims = json.loads(compact.payload)
        except ValueError as exc:
            raise MalformedToken("the payload (part 2 of 3) is not JSON", part="payload") from exc
        if not isinstance(claims, dict):
            raise MalformedToken("the payload (part 2 of 3) is JSON but not an object", part="payload")
        return self._check_claims(claims)

    def _wrong_type(self, typ: object) -> WrongType:
        actual = None if typ is None else str(typ)
        what = "the token has no typ header" if actual is None else f"the token's typ is {_shown(typ)}"
        if actual is not None and actual.lower() == "jwt":
            what += " (an ID token's)"
        return WrongType(
            f"{what}, an access token's is 'at+jwt' (RFC 9068 section 2.1): send the access_token "
            "from the token response, not an ID token or another kind of JWT",
            expected="at+jwt",
            actual=actual,
        )

    def _unknown_key(self, kid: object) -> KeysNotLoaded | UnknownKey:
        if not self._loaded:
            return KeysNotLoaded(
                f"no keys of {self.issuer} are loaded yet, and verify() does no I/O: use "
                "`await verifier.averify(token)`, which fetches the issuer's JWKS on first use, or call "
                "`await verifier.refresh_keys()` once at startup (or pass jwks= to TokenVerifier) before "
                "verify()"
            )
        if not isinstance(kid, str):
            return UnknownKey(
                f"the token header has no kid naming its signing key: {self.issuer}'s access tokens always "
                "have one, so this token was not issued by it"
            )
        held = _listed(self._keys) or "none"
        return UnknownKey(
            f"no key with kid {_shown(kid)} among the keys of {self.issuer} this verifier holds ({held}): "
            "verify() uses only the keys already fetched, averify() refetches the JWKS for an unknown kid "
            f"(at most once every {self._refetch_interval:g} s); if that does not find it either, the "
            "token was not signed by the issuer",
            kid=kid,
        )

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        issuer = claims.get("iss")
        if issuer != self.issuer:
            raise WrongIssuer(
                f"the token was issued by {_shown(issuer)}, this verifier trusts {self.issuer!r}: get the "
                f"token from {self.issuer}, or set TokenVerifier(issuer=...) to the issuer that issued it",
                expected=self.issuer,
                actual=issuer if isinstance(issuer, str) else None,
            )
        audience = claims.get("aud")
        listed = audience if isinstance(audience, list) else [audience]
        audiences = {a for a in listed if isinstance(a, str)}
        if not audiences & self._audiences:
            raise self._wrong_audience(audience, audiences)
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

    def _wrong_audience(self, claim: object, audiences: set[str]) -> WrongAudience:
        accepted = sorted(self._audiences)
        if claim is None:
            what = "the token has no aud claim"
        elif audiences:
            what = f"the token is for {_listed(audiences)}"
        else:
            what = f"the token's aud claim {_shown(claim)} names no audience (it holds no string)"
        return WrongAudience(
            f"{what}, this API accepts {' or '.join(repr(a) for a in accepted)}: request the token for "
            f"this API (resource={accepted[0]} in the token request, RFC 8707), or add the token's "
            "audience to TokenVerifier(audience=...)",
            expected=accepted,
            actual=sorted(audiences),
        )

    async def averify(self, token: str | bytes) -> VerifiedToken:
        """Verify, fetching the issuer's keys first if needed and once more for an unknown kid."""
        if not self._keys and time.monotonic() - self._fetched_at >= self._refetch_interval:
            async with self._lock:
                if not self._keys:
                    await self.refresh_keys()
        try:
            return self.verify(token)
        except UnknownKey as exc:
            if exc.kid is None or len(exc.kid) > 128:
                raise
            await self._refetch_for(exc.kid)
            return self.verify(token)
