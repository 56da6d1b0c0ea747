"""A backend-for-frontend: the SPA's own origin keeps its tokens server-side.

"Don't store tokens in localStorage: use httpOnly cookies with a server-side session, or a BFF that
keeps tokens server-side and issues session cookies to the browser." This is that BFF. It signs the
person in at Threshold as a confidential OpenID Connect client (authorization code with PKCE), keeps the
ID, access and refresh tokens in its own session store, and gives the browser one httpOnly `__Host-`
cookie. The SPA calls its API through the BFF, which attaches the access token (refreshing it, with
rotation, before it expires):

    threshold-bff --issuer https://auth.example.com --client-id spa --client-secret ... \\
        --upstream https://api.internal.example.com --public-url https://app.example.com [--static dist/]

or, inside the application's own ASGI app, `app.mount("/", BackendForFrontend(BffConfig(...)).app)`.

    GET  /bff/login[?returnTo=/path]   -> Threshold's sign-in, then back to returnTo (a same-origin path)
    GET  /bff/callback                 -> the redirect URI to register: {public_url}/bff/callback
    GET  /bff/user                     -> the signed-in person's claims, or 401      (X-CSRF: 1)
    POST /bff/logout                   -> {"logout_url": ...} to navigate to          (X-CSRF: 1)
    POST /bff/backchannel              -> logout tokens from Threshold: the back-channel logout URI
    *    {prefix}/...                  -> the upstream, with Authorization: Bearer    (X-CSRF: 1)

Every call the SPA makes must carry `X-CSRF: 1` (a header a cross-site form cannot send, and that a
cross-origin script can send only after a CORS preflight this origin never grants); a request a browser
marks as cross-site (`Sec-Fetch-Site`) or from another `Origin` is refused too. No token appears in any
response the browser sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from html import escape
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

import aiohttp
import httpx
import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from multidict import CIMultiDict
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from yarl import URL

from threshold.client.backchannel import BackchannelLogout, LogoutEvent
from threshold.client.bff_stores import (
    BffSession,
    MemorySessionStore,
    PendingLogin,
    RedisSessionStore,
    SessionStore,
    SqlSessionStore,
)

__all__ = [
    "BackendForFrontend",
    "BffConfig",
    "BffSession",
    "MemorySessionStore",
    "PendingLogin",
    "RedisSessionStore",
    "SessionStore",
    "SqlSessionStore",
]

SESSION_COOKIE = "__Host-threshold-bff"
LOGIN_COOKIE = "__Host-threshold-bff-login"
ID_TOKEN_ALGORITHMS = ("Ed25519", "EdDSA", "ES256", "RS256")
USER_CLAIMS = (
    "sub",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "org_id",
    "org_role",
    "acr",
    "amr",
)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
FORWARDING = {"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"}
"""What a proxy says about the client: set by the BFF itself, never taken from the browser."""
NOT_FORWARDED_RAW = frozenset(
    name.encode()
    for name in HOP_BY_HOP
    | FORWARDING
    | {"host", "cookie", "authorization", "x-csrf", "origin", "referer", "x-forwarded-port"}
)
NOT_RETURNED_RAW = frozenset(name.encode() for name in HOP_BY_HOP | {"set-cookie", "content-length"})
REFRESH_TIMEOUT = 5.0
"""Seconds a refresh may take in all (the stores' refresh locks last 10 s: the holder is done first)."""
BUFFERED_BYTES = 256 * 1024
"""An API answer up to this size (with a Content-Length) is read whole and passed on in one piece;
a larger or unsized one is streamed."""
NO_STORE = {"Cache-Control": "no-store"}
PROXIED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True, slots=True)
class BffConfig:
    issuer: str
    client_id: str
    client_secret: str
    upstream: str
    """The API's base URL: `{prefix}/orders` is proxied to `{upstream}/orders`."""
    public_url: str
    """This BFF's origin as the browser sees it (the redirect URI is `{public_url}/bff/callback`)."""
    prefix: str = "/api"
    scope: str = "openid email offline_access"
    static_dir: str | None = None
    """The SPA's files, served at `/` (optional: the application may serve them itself)."""
    session_idle: float = 8 * 3600.0
    session_absolute: float = 7 * 86400.0
    refresh_before: float = 30.0
    """Seconds before the access token expires at which it is refreshed."""
    upstream_timeout: float = 30.0
    upstream_connections: int = 64
    """Most requests to the API at once (more wait); 8 of the connections are kept open between calls."""
    max_body_bytes: int = 10 * 1024 * 1024
    login_ttl: float = 600.0

    def __post_init__(self) -> None:
        for name in ("issuer", "upstream", "public_url"):
            value = getattr(self, name)
            parts = urlsplit(value)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError(f"{name} must be an https URL (http only on loopback): {value!r}")
            object.__setattr__(self, name, value.rstrip("/"))
        if not self.prefix.startswith("/") or self.prefix.rstrip("/") in ("", "/bff"):
            raise ValueError("prefix must be a path such as /api (not / or /bff)")
        object.__setattr__(self, "prefix", self.prefix.rstrip("/"))

    @property
    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/bff/callback"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def safe_return_to(value: str | None) -> str:
    """A same-origin path to return to after sign-in; anything else is `/`."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c in "\\" for c in value):
        return "/"
    return value


class UpstreamRefused(Exception):
    """Threshold refused a grant (invalid_grant...): the session cannot go on."""


class BackendForFrontend:
    def __init__(
        self,
        config: BffConfig,
        *,
        store: SessionStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Any = time.time,
    ) -> None:
        self.config = config
        self.store: SessionStore = store or MemorySessionStore(clock=clock)
        self._http = http_client or httpx.AsyncClient(
            timeout=10.0, follow_redirects=False, cookies=_no_cookie_jar()
        )
        self._upstream: aiohttp.ClientSession | None = None  # made in the serving event loop
        self._clock = clock
        public = urlsplit(config.public_url)
        self._origin = config.origin  # (both asked on every call the SPA makes)
        self._forwarded = {"X-Forwarded-Proto": public.scheme, "X-Forwarded-Host": public.netloc}
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._receiver = BackchannelLogout(
            issuer=config.issuer, client_id=config.client_id, http_client=self._http
        )
        routes: list[Any] = [
            Route("/bff/login", self.login, methods=["GET"]),
            Route("/bff/callback", self.callback, methods=["GET"]),
            Route("/bff/user", self.user, methods=["GET"]),
            Route("/bff/logout", self.logout, methods=["POST"]),
            Route("/bff/backchannel", self._receiver.endpoint(self._logged_out), methods=["POST"]),
            Route(config.prefix, self.proxy, methods=PROXIED_METHODS),
            Route(config.prefix + "/{rest:path}", self.proxy, methods=PROXIED_METHODS),
        ]
        if config.static_dir:
            routes.append(Mount("/", app=StaticFiles(directory=config.static_dir, html=True)))

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        self.app = Starlette(
            routes=routes,
            lifespan=lifespan,
            exception_handlers={error: _store_unavailable for error in STORE_OUTAGES},
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._upstream is not None:
            await self._upstream.close()
        await self.store.aclose()

    # --- Threshold's metadata and keys ---------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            response = await self._http.get(f"{self.config.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document = response.json()
            if document.get("issuer") != self.config.issuer:
                raise ValueError(f"the discovery document names the issuer {document.get('issuer')!r}")
            self._metadata = document
        return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            response = await self._http.get((await self.metadata())["jwks_uri"])
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
        return self._keys

    async def _id_token_claims(self, id_token: str, *, nonce: str | None) -> dict[str, Any]:
        """OIDC Core 3.1.3.7: the signature by one of Threshold's keys, then iss, aud, azp, exp, nonce."""
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=list(ID_TOKEN_ALGORITHMS))
            except JoseError:
                token = jwt.decode(
                    id_token, await self._key_set(refresh=True), algorithms=list(ID_TOKEN_ALGORITHMS)
                )
        except (JoseError, ValueError) as error:
            raise UpstreamRefused("the ID token's signature did not verify") from error
        claims = dict(token.claims)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        now = self._clock()
        bad = []
        if claims.get("iss") != self.config.issuer:
            bad.append("iss")
        if self.config.client_id not in audiences:
            bad.append("aud")
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            bad.append("azp")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires + 30 < now:
            bad.append("exp")
        if nonce is not None and not hmac.compare_digest(
            str(claims.get("nonce", "")).encode(), nonce.encode()
        ):
            bad.append("nonce")
        if not isinstance(claims.get("sub"), str):
            bad.append("sub")
        if bad:
            raise UpstreamRefused(f"the ID token's {', '.join(bad)} did not check out")
        return claims

    # --- sign-in ------------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        try:
            endpoint = (await self.metadata())["authorization_endpoint"]
        except (httpx.HTTPError, ValueError, KeyError):
            return _page(503, "Sign-in is unavailable", "Threshold could not be reached. Try again shortly.")
        login = PendingLogin(
            state=generate_token(43),
            nonce=generate_token(43),
            verifier=generate_token(64),
            return_to=safe_return_to(request.query_params.get("returnTo")),
            expires_at=self._clock() + self.config.login_ttl,
        )
        await self.store.put_login(_digest(login.state), login)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": self.config.scope,
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": create_s256_code_challenge(login.verifier),
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"{endpoint}?{query}", status_code=303, headers=NO_STORE)
        _set_cookie(response, LOGIN_COOKIE, login.state, max_age=int(self.config.login_ttl))
        return response

    async def callback(self, request: Request) -> Response:
        params = request.query_params
        state, bound = params.get("state", ""), request.cookies.get(LOGIN_COOKIE, "")
        if not state or not bound or not hmac.compare_digest(state.encode(), bound.encode()):
            return _page(
                400,
                "Sign-in could not finish",
                "This sign-in was not started in this browser, or it expired. Start again.",
                start=True,
            )
        login = await self.store.take_login(_digest(state))
        if login is None:
            return _page(
                400,
                "Sign-in could not finish",
                "This sign-in was already used or has expired. Start again.",
                start=True,
            )
        if params.get("error"):
            message = (
                "Sign-in was cancelled."
                if params["error"] == "access_denied"
                else f"Threshold refused the sign-in ({params['error'][:60]})."
            )
            return _clear(_page(400, "Not signed in", message, start=True), LOGIN_COOKIE)
        code = params.get("code")
        if not code:
            return _clear(
                _page(400, "Sign-in could not finish", "Threshold's answer had no code.", start=True),
                LOGIN_COOKIE,
            )
        try:
            tokens = await self._token_request(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.config.redirect_uri,
                    "code_verifier": login.verifier,
                }
            )
            claims = await self._id_token_claims(str(tokens.get("id_token", "")), nonce=login.nonce)
            claims = {**claims, **await self._userinfo(str(tokens["access_token"]), sub=claims["sub"])}
        except UpstreamRefused:
            return _clear(
                _page(
                    400,
                    "Sign-in could not finish",
                    "Threshold did not accept this sign-in. Start again.",
                    start=True,
                ),
                LOGIN_COOKIE,
            )
        except (httpx.HTTPError, ValueError, KeyError):
            return _page(503, "Sign-in is unavailable", "Threshold could not be reached. Try again shortly.")
        now = self._clock()
        session = BffSession(
            sub=claims["sub"],
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            claims={k: claims[k] for k in USER_CLAIMS if k in claims},
            access_token=str(tokens["access_token"]),
            access_expires_at=now + float(tokens.get("expires_in", 300)),
            refresh_token=tokens.get("refresh_token"),
            id_token=str(tokens["id_token"]),
            created_at=now,
            last_seen_at=now,
        )
        cookie = secrets.token_urlsafe(32)  # a new session id at every sign-in
        await self.store.put(_digest(cookie), session, ttl=self.config.session_idle)
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            await self.store.delete(_digest(old))
        response = RedirectResponse(login.return_to, status_code=303, headers=NO_STORE)
        _set_cookie(response, SESSION_COOKIE, cookie)
        return _clear(response, LOGIN_COOKIE)

    async def _userinfo(self, access_token: str, *, sub: str) -> dict[str, Any]:
        """The person's claims from the userinfo endpoint (email, name...), when it answers for `sub`."""
        endpoint = (await self.metadata()).get("userinfo_endpoint")
        if not endpoint:
            return {}
        response = await self._http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        body = response.json() if response.status_code == 200 else None
        return body if isinstance(body, dict) and body.get("sub") == sub else {}

    async def _token_request(self, form: Mapping[str, str]) -> dict[str, Any]:
        """A token endpoint call as a confidential client (client_secret_basic)."""
        response = await self._http.post(
            (await self.metadata())["token_endpoint"],
            data=dict(form),
            auth=(self.config.client_id, self.config.client_secret),
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 500:
            raise httpx.HTTPStatusError(
                "token endpoint unavailable", request=response.request, response=response
            )
        body = response.json()
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise UpstreamRefused(str(body.get("error") if isinstance(body, dict) else response.status_code))
        return body

    # --- the browser's calls ------------------------------------------------------------------------

    def _refused(self, request: Request) -> Response | None:
        """The same-origin and CSRF rules of every call the SPA makes."""
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if (site is not None and site not in ("same-origin", "none")) or (
            origin is not None and origin != self._origin
        ):
            return JSONResponse({"error": "cross_site"}, status_code=403, headers=NO_STORE)
        if request.headers.get("x-csrf") != "1":
            return JSONResponse(
                {"error": "csrf_header_missing", "error_description": "send the header X-CSRF: 1"},
                status_code=403,
                headers=NO_STORE,
            )
        return None

    async def _session(self, request: Request) -> tuple[str, BffSession] | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        key = _digest(cookie)
        session = await self.store.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.created_at > self.config.session_absolute:
            await self.store.delete(key)
            return None
        return key, session

    async def user(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        found = await self._session(request)
        if found is None:
            return JSONResponse({"error": "not_signed_in"}, status_code=401, headers=NO_STORE)
        return JSONResponse(dict(found[1].claims), headers=NO_STORE)

    async def logout(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        cookie = request.cookies.get(SESSION_COOKIE)
        session = await self.store.delete(_digest(cookie)) if cookie else None
        logout_url = self.config.public_url + "/"
        try:
            metadata = await self.metadata() if session is not None else {}
        except (httpx.HTTPError, ValueError):
            metadata = {}  # Threshold unreachable: this session has ended here all the same
        if session is not None:
            await self._revoke(session.refresh_token)
            if metadata.get("end_session_endpoint"):
                query = urlencode(
                    {
                        "id_token_hint": session.id_token,
                        "post_logout_redirect_uri": self.config.public_url + "/",
                        "client_id": self.config.client_id,
                    }
                )
                logout_url = f"{metadata['end_session_endpoint']}?{query}"
        return _clear(JSONResponse({"logout_url": logout_url}, headers=NO_STORE), SESSION_COOKIE)

    async def _logged_out(self, event: LogoutEvent) -> None:
        await self.store.delete_matching(sid=event.sid, sub=event.sub if event.sid is None else None)

    # --- the API proxy ------------------------------------------------------------------------------

    async def _fresh(self, key: str, session: BffSession) -> BffSession | None:
        """The session with an access token good for `refresh_before` more seconds; None when it ended.
        One refresh at a time per session: concurrent calls wait for it and use its result.
        RefreshUnavailable when Threshold (or the lock's holder) did not answer in time."""
        if session.access_expires_at - self._clock() > self.config.refresh_before:
            return session
        async with self.store.refreshing(key) as held:
            current = await self.store.get(key)
            if current is None:
                return None
            if current.access_expires_at - self._clock() > self.config.refresh_before:
                return current  # refreshed by the call that held the lock
            if not held:
                raise RefreshUnavailable("another refresh of this session is still running")
            if current.refresh_token is None:
                await self.store.delete(key)
                return None
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):  # well inside the lock's lifetime
                    tokens = await self._token_request(
                        {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
                    )
            except UpstreamRefused:
                await self.store.delete(key)  # revoked family, disabled person: the session ends
                return None
            except TimeoutError as error:
                raise RefreshUnavailable("Threshold did not answer the refresh in time") from error
            now = self._clock()
            renewed = replace(
                current,
                access_token=str(tokens["access_token"]),
                access_expires_at=now + float(tokens.get("expires_in") or 300),
                refresh_token=tokens.get("refresh_token", current.refresh_token),
                id_token=str(tokens.get("id_token", current.id_token)),
                last_seen_at=now,
            )
            if not await self.store.replace(key, renewed, ttl=self.config.session_idle):
                # ended (logout, back-channel logout) while Threshold answered: it stays ended, and
                # the tokens just issued are given back
                await self._revoke(renewed.refresh_token)
                return None
            return renewed

    async def _revoke(self, refresh_token: str | None) -> None:
        """Revoke a refresh token (and its grant) at Threshold; best effort: the BFF's session is gone
        whatever happens, and Threshold ends the grant with its own session."""
        if not refresh_token:
            return
        try:
            endpoint = (await self.metadata()).get("revocation_endpoint")
            if endpoint:
                await self._http.post(
                    endpoint,
                    data={"token": refresh_token, "token_type_hint": "refresh_token"},
                    auth=(self.config.client_id, self.config.client_secret),
                )
        except (httpx.HTTPError, ValueError):
            pass

    async def proxy(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        found = await self._session(request)
        try:
            session = await self._fresh(*found) if found is not None else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError, RefreshUnavailable):
            # Threshold unreachable, slow, or its answer unreadable: the session stays; try again
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "sign-in service unreachable"},
                status_code=503,
                headers={**NO_STORE, "Retry-After": "5"},
            )
        if session is None:
            return JSONResponse({"error": "not_signed_in"}, status_code=401, headers=NO_STORE)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.config.max_body_bytes):
            return JSONResponse({"error": "body_too_large"}, status_code=413, headers=NO_STORE)
        target = self._target(request)
        if target is None:
            return JSONResponse({"error": "invalid_path"}, status_code=400, headers=NO_STORE)
        named_in_connection = {
            token.strip().lower().encode() for token in request.headers.get("connection", "").split(",")
        }
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k not in NOT_FORWARDED_RAW and k not in named_in_connection
        )
        headers["Authorization"] = f"Bearer {session.access_token}"
        if request.client is not None:  # the browser's own address, not what it claims
            headers["X-Forwarded-For"] = request.client.host
        headers.update(self._forwarded)
        content: bytes | AsyncIterator[bytes] | None = None
        if declared is not None:
            content = await request.body() if declared != "0" else None  # within the limit, said above
        elif "transfer-encoding" in request.headers:
            content = self._body(request)  # no length given: counted as it streams
        try:
            upstream = await self._upstream_session().request(
                request.method, target, headers=headers, data=content, allow_redirects=False
            )
        except BodyTooLarge:
            return JSONResponse({"error": "body_too_large"}, status_code=413, headers=NO_STORE)
        except TimeoutError:
            return JSONResponse({"error": "upstream_timeout"}, status_code=504, headers=NO_STORE)
        except aiohttp.ClientError as error:
            if isinstance(error.__cause__, BodyTooLarge) or isinstance(error.__context__, BodyTooLarge):
                return JSONResponse({"error": "body_too_large"}, status_code=413, headers=NO_STORE)
            return JSONResponse({"error": "upstream_unavailable"}, status_code=502, headers=NO_STORE)
        returned = [(k, v) for k, v in upstream.raw_headers if k.lower() not in NOT_RETURNED_RAW]
        response: Response
        if request.method == "HEAD":  # no body; the length is the one a GET would have
            upstream.release()
            response = Response(b"", status_code=upstream.status)
            if upstream.content_length is not None:
                returned.append((b"content-length", str(upstream.content_length).encode()))
        elif upstream.content_length is not None and upstream.content_length <= BUFFERED_BYTES:
            # most API answers: read whole (as sent, still encoded), answered with their length
            try:
                body = await upstream.read()
            except TimeoutError:
                return JSONResponse({"error": "upstream_timeout"}, status_code=504, headers=NO_STORE)
            except aiohttp.ClientError:
                return JSONResponse({"error": "upstream_unavailable"}, status_code=502, headers=NO_STORE)
            finally:
                upstream.release()
            response = Response(body, status_code=upstream.status)
            returned.append((b"content-length", str(len(body)).encode()))
        else:
            response = StreamingResponse(_released(upstream), status_code=upstream.status)
        response.raw_headers = returned  # as the API sent them, repeated names included
        return response

    def _target(self, request: Request) -> URL | None:
        """The API's URL for this call: the path under the prefix, as the browser sent it (still
        percent-encoded), below the upstream's base path; None for a path that could leave that base
        (a `.` or `..` segment, however encoded, an encoded slash or backslash) or is not under the
        prefix as sent."""
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        prefix = self.config.prefix.encode()
        if raw_path != prefix and not raw_path.startswith(prefix + b"/"):
            return None  # e.g. the prefix itself percent-encoded: not ours to reinterpret
        rest = raw_path[len(prefix) :].lstrip(b"/")
        if any(byte < 0x21 or byte > 0x7E or byte == 0x5C for byte in rest):
            return None
        lowered = rest.lower()
        if b"%2f" in lowered or b"%5c" in lowered:
            return None
        if any(unquote_to_bytes(segment) in (b".", b"..") for segment in rest.split(b"/")):
            return None
        query = request.scope.get("query_string", b"").decode("latin-1")
        base = f"{self.config.upstream}/{rest.decode('ascii')}"
        return URL(base + (f"?{query}" if query else ""), encoded=True)

    def _upstream_session(self) -> aiohttp.ClientSession:
        if self._upstream is None:
            self._upstream = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.upstream_connections),
                # per step, not in all: a long download or event stream goes on while data flows
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.config.upstream_timeout,
                    sock_read=self.config.upstream_timeout,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # one client serves every session: no cookies kept
                auto_decompress=False,  # bodies pass through as the API encoded them
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._upstream

    async def _body(self, request: Request) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > self.config.max_body_bytes:
                raise BodyTooLarge()
            yield chunk


async def _released(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The API's answer as it arrives; its connection goes back to the pool however the stream ends."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


class RefreshUnavailable(Exception):
    """The access token could not be refreshed now (Threshold unreachable or slow, or another refresh of
    the session still running): a 503, the session kept."""


class BodyTooLarge(Exception):
    """A streamed request body passed the BFF's limit."""


STORE_OUTAGES: tuple[type[Exception], ...] = (RedisError, sa.exc.SQLAlchemyError, OSError)
"""What a session store that cannot be reached raises (Redis or the database down)."""


async def _store_unavailable(request: Request, error: Exception) -> Response:
    """The session store is down: a 503 to retry, not a 500 (and nothing about it in the answer)."""
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "session store unreachable"},
        status_code=503,
        headers={**NO_STORE, "Retry-After": "5"},
    )


def _no_cookie_jar() -> CookieJar:
    """A jar that stores nothing (a policy that accepts no domain): httpx clients otherwise keep every
    Set-Cookie they see and send it with later requests, whoever they are for. (A CookieJar, not
    httpx.Cookies: the client uses a jar as it is, and copies Cookies into a jar of its own.)"""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _set_cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax")


def _clear(response: Response, name: str) -> Response:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _page(status: int, title: str, message: str, *, start: bool = False) -> HTMLResponse:
    link = '<p><a href="/bff/login">Sign in again</a></p>' if start else '<p><a href="/">Back</a></p>'
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><main><h1>{escape(title)}</h1><p>{escape(message)}</p>{link}</main></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


def main(argv: list[str] | None = None) -> int:
    """`threshold-bff`: the BFF on uvicorn (sessions in memory, or shared in Redis or a database)."""
    import argparse
    import os

    import uvicorn

    parser = argparse.ArgumentParser(prog="threshold-bff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="Threshold's issuer URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("THRESHOLD_BFF_CLIENT_SECRET"),
        help="the client's secret (or THRESHOLD_BFF_CLIENT_SECRET, which keeps it out of `ps`)",
    )
    parser.add_argument("--upstream", required=True, help="the API's base URL")
    parser.add_argument("--prefix", default="/api", help="the path proxied to the upstream (default /api)")
    parser.add_argument("--public-url", help="this BFF's URL as browsers see it (default http://HOST:PORT)")
    parser.add_argument("--static", help="a directory of the SPA's files, served at /")
    parser.add_argument(
        "--redis",
        default=os.environ.get("THRESHOLD_BFF_REDIS_URL"),
        help="redis://... to share sessions between BFF processes (default: this process's memory)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("THRESHOLD_BFF_DATABASE_URL"),
        help="postgresql://... or sqlite:///... to share sessions through a database instead",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="IP",
        help="a proxy in front of the BFF whose X-Forwarded-For is believed (repeatable; default: none)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    args = parser.parse_args(argv)
    if not args.client_secret:
        parser.error("--client-secret (or THRESHOLD_BFF_CLIENT_SECRET) is required")
    if args.redis and args.database:
        parser.error("--redis and --database: choose one session store")
    try:
        config = BffConfig(
            issuer=args.issuer,
            client_id=args.client_id,
            client_secret=args.client_secret,
            upstream=args.upstream,
            public_url=args.public_url or f"http://{args.host}:{args.port}",
            prefix=args.prefix,
            static_dir=args.static,
        )
    except ValueError as error:
        parser.error(str(error))
    store: SessionStore | None = None
    try:
        if args.redis:
            store = RedisSessionStore.from_url(args.redis)
        elif args.database:
            store = SqlSessionStore.from_url(args.database)
    except ValueError as error:
        parser.error(str(error))
    bff = BackendForFrontend(config, store=store)
    uvicorn.run(
        bff.app,
        host=args.host,
        port=args.port,
        log_level="warning",
        server_header=False,
        proxy_headers=bool(args.trusted_proxy),  # what the API is told of the client comes from here
        forwarded_allow_ips=args.trusted_proxy or None,
    )
    return 0
