"""Cookies, the client address, CSRF checks, security headers and the request-size limit."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.core import secrets as tokens
from threshold.core.errors import CsrfFailed
from threshold.settings import IPNetwork, Settings

SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
PENDING_COOKIE = "__Host-threshold_pending"
EMAIL_LOGIN_COOKIE = "__Host-threshold_email_login"
DEVICE_COOKIE = "__Host-threshold_device"
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest browsers keep a cookie
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

    Requests with neither header come from non-browser clients, which cannot ride a user's cookies.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if origin not in settings.allowed_origins:
            raise CsrfFailed()
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfFailed()


def check_csrf_token(request: Request, supplied: str | None) -> None:
    """Double submit: the token echoed in a header or form field must equal the CSRF cookie."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not supplied or not tokens.equal(expected, supplied):
        raise CsrfFailed()


class SecurityHeadersMiddleware:
    """Adds security headers to every response, and a per-request CSP nonce for HTML pages."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hsts = settings.is_https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    csp = (
                        f"default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
                        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' https: data:; connect-src 'self'; "
                        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                    )
                else:
                    csp = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    # not no-referrer: under it browsers send "Origin: null" on form posts
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
                ]
                if self.hsts:
                    extra.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
                new_device = scope.get("state", {}).get("new_device")
                if new_device:  # recognises this browser at its next sign-in ("new device" notices)
                    headers.append((b"set-cookie", _device_cookie(new_device)))
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"public, max-age=3600" if is_static else b"no-store"))
                headers.extend((name, value) for name, value in extra if name not in present)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _device_cookie(value: str) -> bytes:
    return (
        f"{DEVICE_COOKIE}={value}; Max-Age={DEVICE_COOKIE_MAX_AGE}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ).encode()


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimitMiddleware:
    """Answers 413 to any request body over the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
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
                if received > self.max_bytes:
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
