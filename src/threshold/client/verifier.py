"""TokenVerifier: verifies Threshold's RFC 9068 access tokens in the application's own process.

Keys come from the issuer's discovery document and JWKS and are cached; an unknown `kid` triggers a
refetch at most once per `refetch_interval`. Every check is explicit: an algorithm allow-list (never
`none`, never HMAC), `typ` at+jwt, issuer, audience, expiry and not-before with a small leeway, and no
header may bring key material of its own (jku, x5u, jwk, x5c) or critical extensions.

Offline (the default) a token is good until its `exp`, whatever happens to its grant meanwhile. Online
(`introspection=Introspection(...)`) a token that passes every offline check is also introspected at
the provider (RFC 7662), which refuses it once it was revoked or its session, refresh family, user or
client has ended; a positive answer is reused for `cache_seconds`, the bound on how long a revoked
token is still accepted. Online checks fail closed: no clear answer from the provider is
DiscoveryFailed (503 through ThresholdAuth), never "valid".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
    Revoked,
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
MAX_CACHE_SECONDS = 300.0
MAX_CACHED_ANSWERS = 10_000


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


@dataclass(frozen=True, slots=True)
class Introspection:
    """The online mode of a TokenVerifier: each token is also introspected at the provider (RFC 7662).

    Args:
        client_id: this API's own confidential client at the provider (one registered with
            `--grant-type client_credentials` will do); it authenticates with client_secret_basic.
        client_secret: its secret (kept out of `repr`).
        cache_seconds: how long a positive answer is reused for the same token (0: ask on every
            request). This is the revocation delay: a token revoked at the provider may still be
            accepted for up to this long. 0..300, 5 by default.
        endpoint: the introspection endpoint; by default the `introspection_endpoint` of the issuer's
            discovery document.
    """

    client_id: str
    client_secret: str = field(repr=False)
    cache_seconds: float = 5.0
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("Introspection needs this API's client_id and client_secret")
        if not (math.isfinite(self.cache_seconds) and 0 <= self.cache_seconds <= MAX_CACHE_SECONDS):
            raise ValueError(
                f"cache_seconds must be 0..{MAX_CACHE_SECONDS:g}: it is how long a revoked token may "
                "still be accepted"
            )

    @property
    def authorization(self) -> str:
        """RFC 6749 section 2.3.1: client_secret_basic, each part form-urlencoded before base64."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


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
        self._refetch_interval = refetch_interval
        self._http = http_client
        self._keys: dict[str, tuple[Key, str | None]] = {}
        self._loaded = False
        self._fetched_at = -1e9
        self._jwks_uri: str | None = None
        self._lock = asyncio.Lock()
        self._introspection = introspection
        self._introspection_endpoint = introspection.endpoint if introspection else None
        self._active: OrderedDict[bytes, float] = OrderedDict()
        self._asking: dict[bytes, asyncio.Task[bool]] = {}
        self._own_http: httpx.AsyncClient | None = None
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

    async def _discover(self, client: httpx.AsyncClient) -> str:
        """Read the discovery document (once): the JWKS URI, and the introspection endpoint if needed."""
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
            endpoint = metadata.get("introspection_endpoint")
            if self._introspection_endpoint is None and isinstance(endpoint, str):
                self._introspection_endpoint = endpoint
            self._jwks_uri = jwks_uri
        return self._jwks_uri

    async def refresh_keys(self) -> None:
        """Fetch the discovery document (once) and the JWKS."""
        client = self._http or httpx.AsyncClient()
        try:
            jwks_uri = await self._discover(client)
            jwks = await self._get(client, jwks_uri)
            if not isinstance(jwks, dict):
                raise DiscoveryFailed(f"{jwks_uri} did not answer a JWKS (a JSON object with keys)")
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
            RuntimeError: the verifier is online: only `averify()` can ask the provider.
        """
        if self._introspection is not None:
            raise RuntimeError(
                "this TokenVerifier is online (introspection=...): verify() does no I/O and so cannot ask "
                "the provider whether the token is still active; use `await verifier.averify(token)`"
            )
        return self._verify_offline(token)

    def _verify_offline(self, token: str | bytes) -> VerifiedToken:
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
        """Verify, fetching the issuer's keys first if needed and once more for an unknown kid; online,
        then ask the provider whether the token is still active (or reuse a recent positive answer).

        Raises:
            Revoked: online, the provider says the token is no longer active.
            DiscoveryFailed: keys, metadata or (online) the provider's answer could not be had.
        """
        if not self._keys and time.monotonic() - self._fetched_at >= self._refetch_interval:
            async with self._lock:
                if not self._keys:
                    await self.refresh_keys()
        try:
            verified = self._verify_offline(token)
        except UnknownKey as exc:
            if exc.kid is None or len(exc.kid) > 128:
                raise
            await self._refetch_for(exc.kid)
            verified = self._verify_offline(token)
        if self._introspection is not None:
            raw = token if isinstance(token, str) else token.decode("ascii", "replace")
            await self._confirm_active(raw, self._introspection)
        return verified

    # --- online mode ----------------------------------------------------------------------------

    async def _confirm_active(self, token: str, online: Introspection) -> None:
        """A positive answer for this token from the last `cache_seconds`, or a new one. Requests that
        arrive while the provider is being asked about the same token share its answer."""
        key = hashlib.sha256(token.encode()).digest()
        until = self._active.get(key)
        if until is not None:
            if time.monotonic() < until:
                return
            del self._active[key]
        task = self._asking.get(key)
        if task is None:
            task = asyncio.ensure_future(self._introspect(token, online))
            self._asking[key] = task
            task.add_done_callback(lambda done: self._asked(key, done))
        if not await asyncio.shield(task):
            raise Revoked(
                f"the provider's introspection ({self._introspection_endpoint}) says the token is no "
                "longer active: it was revoked, or its session, grant, user or client has ended; sign in "
                "or request a new token"
            )
        if online.cache_seconds > 0:
            self._active[key] = time.monotonic() + online.cache_seconds
            self._active.move_to_end(key)
            while len(self._active) > MAX_CACHED_ANSWERS:
                self._active.popitem(last=False)

    def _asked(self, key: bytes, task: asyncio.Task[bool]) -> None:
        if self._asking.get(key) is task:
            del self._asking[key]
        if not task.cancelled():
            task.exception()  # every waiter has it; mark it seen even if all of them went away

    async def _introspect(self, token: str, online: Introspection) -> bool:
        """RFC 7662 section 2: POST the token with this API's credentials; True only for `active: true`."""
        client = self._http or self._own_client()
        endpoint = self._introspection_endpoint
        if endpoint is None:
            await self._discover(client)
            endpoint = self._introspection_endpoint
            if endpoint is None:
                raise DiscoveryFailed(
                    f"the discovery document of {self.issuer} names no introspection_endpoint: pass "
                    "Introspection(endpoint=...)"
                )
        failed = f"could not ask {endpoint} whether the token is still active"
        retry = "the token is refused until the provider answers; the next averify() asks again"
        try:
            response = await client.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Authorization": online.authorization, "Accept": "application/json"},
                timeout=5.0,
            )
        except httpx.HTTPError as exc:
            raise DiscoveryFailed(f"{failed} ({type(exc).__name__}): {retry}") from exc
        if response.status_code == 401:
            raise DiscoveryFailed(
                f"the provider refused this API's client credentials at {endpoint} "
                f"({response.status_code}): check Introspection(client_id=..., client_secret=...) against "
                "the client registered for this API (a confidential client); " + retry
            )
        if response.status_code != 200:
            raise DiscoveryFailed(f"{failed} (HTTP {response.status_code}): {retry}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise DiscoveryFailed(f"{failed} (the answer is not JSON): {retry}") from exc
        active = answer.get("active") if isinstance(answer, dict) else None
        if not isinstance(active, bool):
            raise DiscoveryFailed(f"{failed} (the answer has no boolean active, RFC 7662 2.2): {retry}")
        return active

    def _own_client(self) -> httpx.AsyncClient:
        if self._own_http is None:
            self._own_http = httpx.AsyncClient()
        return self._own_http

    async def aclose(self) -> None:
        """Close the HTTP client the online mode opened for itself (not one passed in)."""
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None
