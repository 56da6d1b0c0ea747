"""Cookies, the client address, CSRF checks, security headers and the request-size limit."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.core import secrets as tokens
from threshold.core.errors import CsrfFailed, CsrfReason
from threshold.oidc.models import NOT_APP_SCHEMES
from threshold.settings import IPNetwork, Settings

SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
PENDING_COOKIE = "__Host-threshold_pending"
EMAIL_LOGIN_COOKIE = "__Host-threshold_email_login"
DEVICE_COOKIE = "__Host-threshold_device"
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest browsers keep a cookie
RETURN_COOKIE = "__Host-threshold_return"
RETURN_COOKIE_MAX_AGE = 3600  # a mailed link's round trip
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def set_session_cookie(response: Response, token: str, *, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def set_pending_cookie(response: Response, token: str, *, max_age: int) -> None:
    """The pending-login cookie: a first factor was proved, a second is owed. It is no session."""
    response.set_cookie(
        PENDING_COOKIE, token, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


def clear_pending_cookie(response: Response) -> None:
    response.delete_cookie(PENDING_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def csrf_token_for(request: Request) -> tuple[str, bool]:
    """The CSRF token bound to this browser, and whether it is new (and must be set as a cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return tokens.new_token(), True


def set_csrf_cookie(response: Response, token: str) -> None:
    response.set_cookie(CSRF_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")


def client_ip(request: Request, trusted_proxies: Iterable[IPNetwork]) -> str:
    """The client address; X-Forwarded-For is believed only when the peer is a listed proxy.

    Walks X-Forwarded-For from the right, skipping trusted proxies, so a client cannot spoof its own
    address by sending the header itself.
    """
    peer = request.client.host if request.client else "unknown"
    proxies = list(trusted_proxies)
    if not proxies or not _is_trusted(peer, proxies):
        return peer
    hops = [
        hop.strip() for hop in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, proxies):
            return hop if _valid_ip(hop) else peer
    return hops[0] if hops and _valid_ip(hops[0]) else peer


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, proxies: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def check_same_origin(request: Request, settings: Settings) -> None:
    """Refuse a cross-site state-changing request: Origin must be ours, else Sec-Fetch-Site same-origin.

    Requests with neither header come from non-browser clients, which cannot ride a user's cookies:
    browsers send Origin on every request whose method is not GET or HEAD.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if origin not in settings.allowed_origins:
            raise CsrfFailed(
                f"The Origin {_echo(origin)} is not allowed for this server "
                f"(allowed: {', '.join(sorted(settings.allowed_origins))}): "
                "send state-changing requests from a page on an allowed origin.",
                reason=CsrfReason.ORIGIN,
            )
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfFailed(
            f"Sec-Fetch-Site is {_echo(site)}: the browser sent this request from another site "
            f"(allowed: same-origin requests from {', '.join(sorted(settings.allowed_origins))}).",
            reason=CsrfReason.CROSS_SITE,
        )


def check_csrf_token(request: Request, supplied: str | None) -> None:
    """Double submit: the token echoed in a header or form field must equal the CSRF cookie."""
    if not supplied:
        raise CsrfFailed(
            "No CSRF token: send the token from GET /api/v1/csrf in the X-CSRF-Token header.",
            reason=CsrfReason.MISSING_TOKEN,
        )
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected:
        raise CsrfFailed(
            f"No {CSRF_COOKIE} cookie came with the CSRF token: send the cookie that GET /api/v1/csrf "
            "sets along with its token (the cookie is Secure: HTTPS, or http://localhost).",
            reason=CsrfReason.MISSING_COOKIE,
        )
    if not tokens.equal(expected, supplied):
        raise CsrfFailed(
            f"The CSRF token does not match the {CSRF_COOKIE} cookie: "
            "fetch a fresh one from GET /api/v1/csrf.",
            reason=CsrfReason.TOKEN_MISMATCH,
        )


def _echo(value: str, limit: int = 100) -> str:
    """An untrusted header value fit to quote in a message: printable ASCII only, cut to `limit`."""
    shown = "".join(c if "!" <= c <= "~" else "?" for c in value[:limit])
    return shown + "..." if len(value) > limit else shown


FORM_REDIRECTS_STATE = "form_redirect_sources"
_HOST_SOURCE = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")
_SCHEME_SOURCE = re.compile(r"[a-z][a-z0-9+.-]*:")


def csp_source(uri: str) -> str | None:
    """The CSP source expression that matches where `uri` points: its origin, or its scheme for a
    private-use URI scheme (a native app's `com.example.app:/callback`). None when it has neither.

    Paths are left out on purpose: CSP ignores a source's path once a request was redirected.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            return None
        source = f"{scheme}://{parts.netloc.rpartition('@')[2].lower()}"
        return source if _HOST_SOURCE.fullmatch(source) else None
    if scheme in NOT_APP_SCHEMES:
        return None
    source = f"{scheme}:"
    return source if scheme and _SCHEME_SOURCE.fullmatch(source) else None


def allow_form_redirect(request: Request, uri: str) -> None:
    """Let the page rendered for this request post a form whose redirects end at `uri`.

    Chromium applies `form-action` to every hop of the redirect chain that follows a form submission,
    so a page whose form continues an authorization (sign-in, sign-up, second factor, consent, the
    passkey offer) or an RP-initiated logout must name the registered redirect URI's origin.
    """
    source = csp_source(uri)
    if source is not None:
        sources = request.scope.setdefault("state", {}).setdefault(FORM_REDIRECTS_STATE, [])
        if source not in sources:
            sources.append(source)


def page_csp(nonce: str, form_redirects: Iterable[str] = ()) -> str:
    """The Content-Security-Policy of every HTML page: nonce'd scripts and styles, no framing."""
    form_action = " ".join(["'self'", *form_redirects])
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' https: data:; connect-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


CSP_NONCE_STATE = "csp_nonce"
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
"""The Content-Security-Policy of every response that is not an HTML page."""


def csp_nonce(scope: Scope) -> str:
    """This request's CSP nonce, made when first asked for: by the page it renders (its scripts and
    styles carry it), else by SecurityHeadersMiddleware for an HTML answer that did not ask."""
    state = scope.setdefault("state", {})
    nonce: str | None = state.get(CSP_NONCE_STATE)
    if nonce is None:
        nonce = state[CSP_NONCE_STATE] = secrets.token_urlsafe(16)
    return nonce


class SecurityHeadersMiddleware:
    """Adds security headers to every response, and a per-request CSP nonce for HTML pages."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            # not no-referrer: under it browsers send "Origin: null" on form posts
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
        ]
        if settings.is_https:
            common.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self._common = tuple(common)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # made here, before an inner layer may copy the scope, so that the page's nonce lands in it
        state = scope.setdefault("state", {})
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = set()
                content_type = b""
                for name, value in headers:
                    lowered = name.lower()
                    present.add(lowered)
                    if lowered == b"content-type" and not content_type:
                        content_type = value
                if content_type.startswith(b"text/html"):
                    csp = page_csp(csp_nonce(scope), state.get(FORM_REDIRECTS_STATE, ())).encode()
                else:
                    csp = API_CSP
                new_device = state.get("new_device")
                if new_device:  # recognises this browser at its next sign-in ("new device" notices)
                    headers.append((b"set-cookie", _device_cookie(new_device)))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                headers.extend(pair for pair in self._common if pair[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"public, max-age=3600" if is_static else b"no-store"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _device_cookie(value: str) -> bytes:
    return (
        f"{DEVICE_COOKIE}={value}; Max-Age={DEVICE_COOKIE_MAX_AGE}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ).encode()


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413)


LARGER_BODIES: tuple[tuple[re.Pattern[str], int], ...] = ((re.compile(r"^/sso/saml/[^/]+/acs$"), 512 * 1024),)
"""Routes that take more than the general limit: a SAML IdP posts a signed response whose size grows
with the person's attributes and groups (the ACS checks its own field limit and answers its own page)."""


class BodyLimitMiddleware:
    """Answers 413 to any request body over the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _limit(self, path: str) -> int:
        for pattern, limit in LARGER_BODIES:
            if pattern.match(path):
                return max(limit, self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope.get("path", ""))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > max_bytes
                except ValueError:
                    too_large = True
                if too_large:
                    await _too_large(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(scope, receive, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    from threshold.web.errors import problem_response

    response = problem_response(413, "payload_too_large", "The request body is too large.")
    await response(scope, receive, send)
