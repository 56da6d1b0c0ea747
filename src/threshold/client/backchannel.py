"""BackchannelLogout: receives OpenID Connect Back-Channel Logout 1.0 requests from Threshold.

When a person's session at Threshold ends (logout, "sign out everywhere", a disabled account...),
Threshold POSTs a logout token to the `backchannel_logout_uri` of each application that held a grant
under it. The application checks the token (section 2.6) and ends its own sessions (section 2.7): the
one bound to `sid`, or, with only a `sub`, every session of that person.

    from fastapi import FastAPI
    from threshold.client import BackchannelLogout, LogoutEvent

    receiver = BackchannelLogout(issuer="https://auth.example.com", client_id="my-app")

    async def end_sessions(event: LogoutEvent) -> None:
        # the application's own store; raise if it cannot (a session already gone is a success)
        if event.sid is not None:
            await sessions.delete_where(threshold_sid=event.sid)
        else:
            await sessions.delete_where(threshold_sub=event.sub)

    app = FastAPI()
    app.add_route("/backchannel-logout", receiver.endpoint(end_sessions), methods=["POST"])

and register https://app.example.com/backchannel-logout as the client's `backchannel_logout_uri`.
The endpoint answers 200 once `end_sessions` returned, 400 with an OAuth-style JSON error otherwise
(section 2.8), never cached. `receiver.asgi_app(end_sessions)` is the same endpoint as plain ASGI;
`await receiver.verify(token)` the check alone, for any other framework.

Replays: an accepted `jti` is remembered until the token could no longer be accepted anyway. The
default cache lives in this process; with several workers give each the same `replay_cache=` (a
ReplayCache, e.g. on Redis).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard
from urllib.parse import parse_qs

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.client._diagnosis import MAX_TOKEN_BYTES, listed, shown
from threshold.client.errors import (
    DiscoveryFailed,
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    MalformedToken,
    NotYetValid,
    TokenError,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongType,
)
from threshold.client.keys import IssuerKeys
from threshold.client.verifier import ASYMMETRIC, FORBIDDEN_HEADERS, KEY_TYPES

log = logging.getLogger(__name__)

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPES = ("logout+jwt", "application/logout+jwt")
"""Section 2.4: "explicitly typed" logout tokens carry `typ` logout+jwt (the media type, RFC 7515
section 4.1.9, may be written in full)."""
DEFAULT_ALGORITHMS = ("RS256", "ES256", "Ed25519")
"""The algorithms Threshold signs with; RS256 is its default `id_token_signed_response_alg`. Ed25519 is
the fully-specified name of EdDSA over Ed25519 (RFC 9864); add "EdDSA" for a provider that still uses
the deprecated name (joserfc then warns, once, when the receiver is built)."""
DEFAULT_MAX_AGE = 120
"""Section 4: OPs are encouraged to keep logout tokens valid for at most two minutes."""
MAX_BODY_BYTES = 32_768
"""A form with a logout token of at most MAX_TOKEN_BYTES (base64url needs no percent-encoding)."""


# --- what a logout token can be refused for ------------------------------------------------------
# Besides these, `verify` raises the TokenErrors every token check shares: MalformedToken,
# ForbiddenHeader, UnsupportedAlgorithm, WrongType, UnknownKey, InvalidSignature, WrongIssuer,
# WrongAudience, Expired, NotYetValid and DiscoveryFailed. Messages quote claim values, never the token.


class MissingClaim(MalformedToken):
    """`claim` ("iat", "jti", "sub or sid") is absent, or not of the type section 2.4 requires."""

    reason = "missing_claim"

    def __init__(self, message: str, *, claim: str) -> None:
        super().__init__(message, part="claims")
        self.claim = claim


class StaleToken(Expired):
    """The token's `iat` is older than `max_age` (plus the leeway): a captured token, replayed late."""

    reason = "stale"


class MissingLogoutEvent(TokenError):
    """No `events` object with a back-channel-logout member whose value is an object (section 2.6
    step 5): an ID token or another JWT of the issuer, not a logout token."""

    reason = "missing_logout_event"


class NoncePresent(TokenError):
    """Section 2.4: a logout token must not carry a `nonce`, so that an ID token cannot pass for one."""

    reason = "nonce_present"


class ReplayedToken(TokenError):
    """A logout token with this `jti` was already accepted (section 2.6 step 7)."""

    reason = "replayed"


# --- what a valid token proves -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogoutEvent:
    """The issuer ended this session (`sid`) and/or all sessions of this person (`sub`): at least one
    is set. End every local session that matches, for this issuer."""

    sub: str | None
    sid: str | None
    jti: str
    iat: int
    issuer: str
    claims: Mapping[str, Any] = field(repr=False, compare=False)


# --- replay detection ----------------------------------------------------------------------------


class ReplayCache(Protocol):
    """Where accepted `jti`s are remembered, shared by every process that receives logout tokens.

    A Redis-backed one is two commands:

        class RedisReplayCache:
            async def add(self, key: str, *, ttl: float) -> bool:
                return bool(await redis.set(f"logout-jti:{key}", b"1", nx=True, px=math.ceil(ttl * 1000)))

            async def discard(self, key: str) -> None:
                await redis.delete(f"logout-jti:{key}")
    """

    async def add(self, key: str, *, ttl: float) -> bool:
        """Remember `key` for `ttl` seconds. True if it was not remembered yet; atomically, so that of
        two concurrent calls with one key exactly one gets True."""
        ...

    async def discard(self, key: str) -> None:
        """Forget `key` (the application could not end the sessions: the issuer may send it again)."""
        ...


class InMemoryReplayCache:
    """A ReplayCache for one process: a dict of key -> expiry, swept at most once a second."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiries: dict[str, float] = {}
        self._next_sweep = 0.0

    async def add(self, key: str, *, ttl: float) -> bool:
        now = self._clock()
        if now >= self._next_sweep:
            self._expiries = {k: t for k, t in self._expiries.items() if t > now}
            self._next_sweep = now + 1.0
        if self._expiries.get(key, 0.0) > now:
            return False
        self._expiries[key] = now + ttl
        return True

    async def discard(self, key: str) -> None:
        self._expiries.pop(key, None)


def replay_key(issuer: str, jti: str) -> str:
    """A `jti` is unique per issuer; the key is fixed-length whatever the `jti` holds."""
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


# --- the receiver --------------------------------------------------------------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class BackchannelLogout:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        max_age: int = DEFAULT_MAX_AGE,
        refetch_interval: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
        jwks: Mapping[str, Any] | None = None,
        keys: IssuerKeys | None = None,
        detect_replays: bool = True,
        replay_cache: ReplayCache | None = None,
        accept_untyped: bool = False,
    ) -> None:
        """Checks logout tokens that `issuer` sends to the client `client_id` (their audience).

        Args:
            algorithms: the JWS algorithms accepted (asymmetric only).
            leeway: seconds of clock difference tolerated for `iat` and `exp`.
            max_age: seconds after its `iat` a token is still accepted (plus `leeway`).
            jwks: the issuer's keys, given up front; `keys`: an IssuerKeys of the same issuer to share;
                with neither, the keys come from the issuer's discovery document and JWKS.
            detect_replays: refuse a `jti` already accepted within `max_age`, in `replay_cache`
                (an in-memory one for this process by default).
            accept_untyped: accept a token without `typ` (another provider's); one with a `typ` other
                than logout+jwt is always refused. Threshold always sends logout+jwt.
        """
        algs = tuple(algorithms)
        if not algs or not set(algs) <= ASYMMETRIC:
            raise ValueError("algorithms must be a non-empty list of asymmetric JWS algorithms")
        if not client_id:
            raise ValueError("client_id must be this application's client id: the logout token's audience")
        if leeway < 0 or max_age <= 0:
            raise ValueError("leeway must be at least 0 and max_age more than 0 seconds")
        if keys is not None and jwks is not None:
            raise ValueError("pass jwks= or keys=, not both")
        self.issuer = issuer.rstrip("/")
        if keys is not None and keys.issuer != self.issuer:
            raise ValueError(f"keys= holds the keys of {keys.issuer!r}, not of {self.issuer!r}")
        self.client_id = client_id
        self._algorithms = frozenset(algs)
        registry = JWSRegistry(algorithms=list(algs))
        self._alg_models = {alg: registry.get_alg(alg) for alg in algs}
        self._leeway = leeway
        self._max_age = max_age
        if keys is None:
            keys = IssuerKeys(
                issuer=self.issuer, refetch_interval=refetch_interval, http_client=http_client, jwks=jwks
            )
        self._keys = keys
        self._replays: ReplayCache | None = None
        if detect_replays:
            self._replays = replay_cache if replay_cache is not None else InMemoryReplayCache()
        self._accept_untyped = accept_untyped

    async def verify(self, logout_token: str) -> LogoutEvent:
        """Check a logout token as section 2.6 requires, fetching the issuer's keys if needed and once
        more for an unknown `kid`; then remember its `jti` (unless replay detection is off).

        Raises:
            TokenError: a subclass saying what is wrong (its `reason` is a stable code).
            DiscoveryFailed: the issuer's keys could not be had (the token may be fine).
        """
        await self._keys.load_if_empty()
        try:
            claims = self._verified_claims(logout_token)
        except UnknownKey as exc:
            if exc.kid is None or len(exc.kid) > 128:
                raise
            await self._keys.refetch_for(exc.kid)
            claims = self._verified_claims(logout_token)
        event = self._check_claims(claims)
        if self._replays is not None and not await self._replays.add(
            replay_key(event.issuer, event.jti), ttl=self._replay_ttl(claims)
        ):
            raise ReplayedToken(
                f"a logout token with jti {shown(event.jti)} was already accepted: a logout token is "
                "delivered once (OIDC Back-Channel Logout 1.0 section 2.6)"
            )
        return event

    async def forget(self, event: LogoutEvent) -> None:
        """Accept this event's token once more: the sessions could not be ended, the issuer may resend."""
        if self._replays is not None:
            await self._replays.discard(replay_key(event.issuer, event.jti))

    def endpoint(
        self, on_logout: Callable[[LogoutEvent], Awaitable[object]], *, max_body_bytes: int = MAX_BODY_BYTES
    ) -> Callable[[Request], Awaitable[Response]]:
        """The back-channel logout endpoint (sections 2.5 and 2.8) as a Starlette/FastAPI endpoint,
        `app.add_route(path, receiver.endpoint(on_logout), methods=["POST"])`. It takes a `POST` with a
        form-encoded `logout_token` and awaits `on_logout(event)` for a valid one, which must end the
        matching local sessions (a session already gone counts as ended) and raise if it could not."""
        return BackchannelLogoutEndpoint(self, on_logout, max_body_bytes=max_body_bytes).handle

    def asgi_app(
        self, on_logout: Callable[[LogoutEvent], Awaitable[object]], *, max_body_bytes: int = MAX_BODY_BYTES
    ) -> ASGIApp:
        """The same endpoint as a plain ASGI application, for `Route(path, receiver.asgi_app(...))` or to
        be served on its own."""
        return BackchannelLogoutEndpoint(self, on_logout, max_body_bytes=max_body_bytes)

    # --- section 2.6 steps 1 and 2: a JWS signed by the issuer -----------------------------------

    def _verified_claims(self, token: str) -> dict[str, Any]:
        raw = token.encode("ascii", "replace")
        if len(raw) > MAX_TOKEN_BYTES:
            raise MalformedToken(f"the logout token is longer than {MAX_TOKEN_BYTES} bytes")
        if not token.isascii():
            raise MalformedToken("the logout token contains non-ASCII characters (a JWS is base64url)")
        parts = raw.split(b".")
        if len(parts) == 5:
            raise MalformedToken(
                "the logout token is encrypted (a JWE): this receiver takes signed logout tokens only; "
                "register no id_token_encrypted_response_alg for this client"
            )
        if len(parts) != 3:
            raise MalformedToken(
                f"the logout token has {len(parts)} dot-separated part{'s' * (len(parts) != 1)} where a "
                "JWS has 3 (header.payload.signature)"
            )
        header = self._header(parts[0])
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise UnsupportedAlgorithm(
                f"the logout token is signed with alg {shown(alg)}, this receiver accepts "
                f"{', '.join(sorted(self._algorithms))} (never none or HMAC)"
            )
        if FORBIDDEN_HEADERS & header.keys():
            raise ForbiddenHeader(
                f"the logout token header carries {', '.join(sorted(FORBIDDEN_HEADERS & header.keys()))}: "
                "a token may not bring its own keys (jku, x5u, jwk, x5c) or critical extensions (crit)"
            )
        self._check_type(header.get("typ"))
        key, kid = self._key_for(header, alg)
        try:
            signature = urlsafe_b64decode(parts[2])
            valid = self._alg_models[alg].verify(parts[0] + b"." + parts[1], signature, key)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidSignature(f"the signature of the logout token is not a {alg} signature") from exc
        if not valid:
            raise InvalidSignature(
                f"the signature does not match key {shown(kid)} of {self.issuer}: the logout token was "
                "altered after it was signed, or signed by someone else"
            )
        try:
            claims = json.loads(urlsafe_b64decode(parts[1]))
        except ValueError as exc:  # binascii.Error, JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise MalformedToken("the logout token's payload is not base64url JSON", part="payload") from exc
        if not isinstance(claims, dict):
            raise MalformedToken("the logout token's payload is JSON but not an object", part="payload")
        return claims

    @staticmethod
    def _header(segment: bytes) -> dict[str, Any]:
        try:
            header = json.loads(urlsafe_b64decode(segment))
        except ValueError as exc:
            raise MalformedToken("the logout token's header is not base64url JSON", part="header") from exc
        if not isinstance(header, dict):
            raise MalformedToken("the logout token's header is JSON but not an object", part="header")
        return header

    def _check_type(self, typ: object) -> None:
        """Section 2.4: explicit typing keeps other JWTs of the issuer (ID tokens) from passing."""
        if typ is None and self._accept_untyped:
            return
        if not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES:
            what = "no typ header" if typ is None else f"typ {shown(typ)}"
            raise WrongType(
                f"the token has {what}, a logout token's is 'logout+jwt' (OIDC Back-Channel Logout 1.0 "
                "section 2.4): an ID token or another JWT is not a logout token",
                expected="logout+jwt",
                actual=None if typ is None else str(typ),
            )

    def _key_for(self, header: Mapping[str, Any], alg: str) -> tuple[Key, str]:
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise UnknownKey(f"the logout token header has no kid naming a key of {self.issuer}")
        entry = self._keys.get(kid)
        if entry is None:
            raise UnknownKey(
                f"no key with kid {shown(kid)} among the keys of {self.issuer} "
                f"({listed(self._keys) or 'none'}); its JWKS is refetched for an unknown kid at most once "
                f"every {self._keys.refetch_interval:g} s: if it does not publish this key, the logout "
                "token was not signed by it",
                kid=kid,
            )
        key, key_alg = entry
        if key_alg is not None and key_alg != alg:
            raise UnsupportedAlgorithm(f"the issuer publishes key {shown(kid)} for {key_alg}, not for {alg}")
        expected_kty = KEY_TYPES.get(alg, "RSA")
        if key.key_type != expected_kty:
            raise UnsupportedAlgorithm(
                f"key {shown(kid)} is an {key.key_type} key, alg {alg} needs {expected_kty}"
            )
        return key, kid

    # --- section 2.6 steps 3 to 6: the claims ----------------------------------------------------

    def _check_claims(self, claims: dict[str, Any]) -> LogoutEvent:
        """Section 2.6: `iss` and `aud` as for an ID token (OIDC Core 3.1.3.7 steps 2 and 3), then the
        claims section 2.4 requires of a logout token and the `nonce` it forbids."""
        issuer = claims.get("iss")
        if issuer != self.issuer:
            raise WrongIssuer(
                f"the logout token was issued by {shown(issuer)}, this receiver trusts {self.issuer!r}",
                expected=self.issuer,
                actual=issuer if isinstance(issuer, str) else None,
            )
        audience = claims.get("aud")
        listed_audiences = audience if isinstance(audience, list) else [audience]
        audiences = sorted(a for a in listed_audiences if isinstance(a, str))
        if self.client_id not in audiences:
            raise WrongAudience(
                f"the logout token is for {listed(audiences) or 'no audience'}, this receiver is the client "
                f"{self.client_id!r}: set BackchannelLogout(client_id=...) to the client whose "
                "backchannel_logout_uri this is",
                expected=(self.client_id,),
                actual=audiences,
            )
        iat = self._check_times(claims)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise MissingClaim("the logout token has no jti (a non-empty string, section 2.4)", claim="jti")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise MissingLogoutEvent(
                "the token's events claim is not an object with a "
                f"{BACKCHANNEL_LOGOUT_EVENT} member whose value is an object (section 2.4): it is not a "
                "logout token"
            )
        sub, sid = claims.get("sub"), claims.get("sid")
        for name, value in (("sub", sub), ("sid", sid)):
            if value is not None and (not isinstance(value, str) or not value):
                raise MissingClaim(f"the logout token's {name} is not a non-empty string", claim=name)
        if sub is None and sid is None:
            raise MissingClaim(
                "the logout token names neither a sub nor a sid (section 2.4)", claim="sub or sid"
            )
        if "nonce" in claims:
            raise NoncePresent("the token carries a nonce, which a logout token must not (section 2.4)")
        return LogoutEvent(sub=sub, sid=sid, jti=jti, iat=int(iat), issuer=self.issuer, claims=claims)

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        """`iat` is required, neither older than `max_age` nor in the future; `exp`, if present, not past
        (OIDC Core section 3.1.3.7, steps 9 and 10, as section 2.6 step 3 refers to them)."""
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not _is_number(iat):
            raise MissingClaim(
                "the logout token has no iat, or it is not a number (section 2.4)", claim="iat"
            )
        if iat - self._leeway > now:
            raise NotYetValid(
                f"the logout token was issued {iat - now:.0f} s in the future (the leeway is "
                f"{self._leeway} s): the clocks of the issuer and of this service disagree; synchronise them"
            )
        if now - iat > self._max_age + self._leeway:
            raise StaleToken(
                f"the logout token was issued {now - iat:.0f} s ago, more than the {self._max_age} s "
                f"(plus a leeway of {self._leeway} s) this receiver accepts"
            )
        if exp is not None:
            if not _is_number(exp):
                raise MalformedToken("the logout token's exp is not a number", part="claims")
            if exp + self._leeway <= now:
                raise Expired(
                    f"the logout token expired {now - exp:.0f} s ago (the leeway is {self._leeway} s)"
                )
        return float(iat)

    def _replay_ttl(self, claims: Mapping[str, Any]) -> float:
        """How long the token could still be accepted: after that, the iat (or exp) check refuses it."""
        until = float(claims["iat"]) + self._max_age + self._leeway
        exp = claims.get("exp")
        if _is_number(exp):
            until = min(until, float(exp) + self._leeway)
        return max(until - time.time(), 1.0)


# --- the endpoint (sections 2.5 and 2.8) ---------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store"}


def _refusal(status: int, error: str, description: str, headers: Mapping[str, str] = NO_STORE) -> Response:
    """Section 2.8: "If the logout request was invalid or the logout failed, the RP MUST respond with HTTP
    400 Bad Request", with an OAuth 2.0 style error body, and never cached."""
    return JSONResponse({"error": error, "error_description": description}, status, headers=dict(headers))


class BackchannelLogoutEndpoint:
    """200 (empty, no-store) once `on_logout` returned; 400 invalid_request for anything but a valid
    logout token in a form POST; 400 temporarily_unavailable when the issuer's keys could not be had or
    `on_logout` raised (then the token's jti is forgotten, so that a redelivery works); 405 for other
    methods. `handle` is a Starlette endpoint, the instance itself a plain ASGI application."""

    def __init__(
        self,
        receiver: BackchannelLogout,
        on_logout: Callable[[LogoutEvent], Awaitable[object]],
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.receiver = receiver
        self.on_logout = on_logout
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own (uvicorn): nothing to start or stop
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":
            response = await self.handle(Request(scope, receive))
            await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            headers = {**NO_STORE, "Allow": "POST"}
            return _refusal(405, "invalid_request", "the back-channel logout endpoint takes POST", headers)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != FORM:
            return _refusal(
                400, "invalid_request", f"the request must be a form ({FORM}) with a logout_token"
            )
        body = await self._body(request)
        if body is None:
            return _refusal(400, "invalid_request", f"the body is larger than {self.max_body_bytes} bytes")
        try:
            form = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=16)
        except ValueError:  # UnicodeDecodeError, or too many fields
            return _refusal(400, "invalid_request", "the request body is not a small ASCII form")
        tokens = form.get("logout_token", [])
        if len(tokens) != 1:
            return _refusal(400, "invalid_request", "the form must carry exactly one logout_token")
        try:
            event = await self.receiver.verify(tokens[0])
        except DiscoveryFailed as exc:
            log.warning("back-channel logout: the issuer's keys could not be fetched: %s", exc)
            return _refusal(400, "temporarily_unavailable", "the issuer's keys could not be fetched; retry")
        except TokenError as exc:
            log.info("back-channel logout refused (%s): %s", exc.reason, exc)
            return _refusal(400, "invalid_request", f"invalid logout token ({exc.reason}): {exc}")
        try:
            await self.on_logout(event)
        except Exception:
            log.exception("back-channel logout: on_logout failed (sid %r, sub %r)", event.sid, event.sub)
            await self.receiver.forget(event)
            return _refusal(400, "temporarily_unavailable", "the application could not end the sessions")
        return Response(status_code=200, headers=NO_STORE)

    async def _body(self, request: Request) -> bytes | None:
        """The request body, or None once it is (or says it will be) larger than the limit."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    return None
                chunks.append(chunk)
        except ClientDisconnect:
            return None
        return b"".join(chunks)


__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MAX_AGE",
    "LOGOUT_TOKEN_TYPES",
    "MAX_BODY_BYTES",
    "BackchannelLogout",
    "BackchannelLogoutEndpoint",
    "InMemoryReplayCache",
    "LogoutEvent",
    "MissingClaim",
    "MissingLogoutEvent",
    "NoncePresent",
    "ReplayCache",
    "ReplayedToken",
    "StaleToken",
    "replay_key",
]
