"""Authenticating requests in an application: a bearer access token, or (same-site deployments) the
Threshold session cookie checked against the Threshold server on every request, so a revocation
takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.client.errors import DiscoveryFailed, MissingScope, TokenError
from threshold.client.verifier import TokenVerifier

SESSION_COOKIE = "__Host-threshold_session"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user through a session, or a user or service through an access token."""

    kind: Literal["token", "session"]
    subject: str
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None
    email: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False)


RFC6750_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})
"""Codes that go into the challenge; every other refusal is a bare `Bearer` challenge."""


def _quotable(text: str, *, space: bool = False) -> bool:
    """RFC 6750 section 3: scope tokens are NQCHARs (printable ASCII but `"` and `\\`); a realm may
    hold spaces too."""
    return bool(text) and all((ch == " " and space) or ("!" <= ch <= "~" and ch not in '"\\') for ch in text)


def challenge_headers(
    status: int, error: str, *, realm: str | None = None, scopes: tuple[str, ...] = ()
) -> dict[str, str]:
    """RFC 6750 section 3: every 401 and 403 carries a Bearer challenge; `error` only when a presented
    token failed ("If the request lacks any authentication information ..., the resource server SHOULD
    NOT include an error code or other error information"); `scope` with insufficient_scope. A 503
    (the check itself failed) asks for a retry instead."""
    if status == 503:
        return {"Retry-After": "2"}
    params = [f'realm="{realm}"'] if realm is not None else []
    if error in RFC6750_ERRORS:
        params.append(f'error="{error}"')
        if error == "insufficient_scope" and scopes:
            params.append(f'scope="{" ".join(scopes)}"')
    return {"WWW-Authenticate": " ".join(["Bearer", ", ".join(params)]).rstrip()}


class AuthenticationFailed(HTTPException):
    """Why a request was refused, for both the dependency and the middleware.

    `error` is the body's code: invalid_token or insufficient_scope (RFC 6750, a presented token
    failed), not_authenticated (no usable credentials: no token, another scheme, no or a dead session),
    temporarily_unavailable (the check itself failed: 503). `reason` is a finer stable code: the
    TokenError reason (expired, wrong_audience, ...), missing_credentials, unsupported_scheme,
    invalid_session, session_check_failed. `description` says what is wrong and what to do.
    """

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        reason: str | None = None,
        realm: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        headers = challenge_headers(status, error, realm=realm, scopes=scopes)
        super().__init__(status, description, headers=headers)
        self.status = status
        self.error = error
        self.description = description
        self.reason = reason or error
        self.headers: dict[str, str] = headers

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description, "reason": self.reason}


def refusal_response(failure: AuthenticationFailed) -> JSONResponse:
    """The one answer to a refused request, whichever surface refused it."""
    return JSONResponse(failure.body, status_code=failure.status, headers=failure.headers)


async def handle_authentication_failed(request: Request, exc: Exception) -> Response:
    """Exception handler giving `Depends(auth)` the middleware's answer:
    `app.add_exception_handler(AuthenticationFailed, handle_authentication_failed)`. Without it FastAPI
    still answers the same status and challenge, with its own `{"detail": description}` body."""
    assert isinstance(exc, AuthenticationFailed)
    return refusal_response(exc)


class ThresholdAuth:
    """A FastAPI dependency (`Depends(auth)`) and the engine of ThresholdAuthMiddleware.

    Args:
        verifier: checks bearer access tokens locally.
        session_url: Threshold's `/api/v1/session` URL; when set, the session cookie is accepted too.
        required_scopes: scopes a bearer token must carry (sessions are the user themself).
        realm: the `realm` of every `WWW-Authenticate: Bearer` challenge (RFC 6750 section 3); none by
            default.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        session_url: str | None = None,
        required_scopes: tuple[str, ...] = (),
        realm: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if realm is not None and not _quotable(realm, space=True):
            raise ValueError("realm must be printable ASCII without quotes or backslashes")
        if not all(_quotable(scope) for scope in required_scopes):
            raise ValueError("required_scopes must be scope tokens (RFC 6749 section 3.3)")
        self.verifier = verifier
        self.session_url = session_url
        self.required_scopes = required_scopes
        self.realm = realm
        self._http = http_client

    def _refuse(
        self, status: int, error: str, description: str, *, reason: str | None = None
    ) -> AuthenticationFailed:
        return AuthenticationFailed(
            status, error, description, reason=reason, realm=self.realm, scopes=self.required_scopes
        )

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """The principal of a request, or AuthenticationFailed saying why not."""
        scheme, _, credentials = connection.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            return await self._check_token(credentials.strip())
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie and self.session_url:
            return await self._check_session(cookie)
        raise self._no_credentials(scheme, cookie=bool(cookie))

    def _no_credentials(self, scheme: str, *, cookie: bool) -> AuthenticationFailed:
        how = "send an access token in the Authorization header (Authorization: Bearer <token>)"
        if self.session_url:
            how += ", or sign in to Threshold first (its session cookie)"
        if scheme:
            shown = scheme if len(scheme) <= 20 and _quotable(scheme) else "another"
            description = f"the Authorization header uses the {shown} scheme, this API takes Bearer: {how}"
            return self._refuse(401, "not_authenticated", description, reason="unsupported_scheme")
        if cookie:
            how += "; this API does not accept the Threshold session cookie"
        return self._refuse(401, "not_authenticated", f"no credentials: {how}", reason="missing_credentials")

    async def _check_token(self, raw: str) -> Principal:
        try:
            token = await self.verifier.averify(raw)
            token.require_scopes(*self.required_scopes)
        except MissingScope as exc:
            raise self._refuse(403, "insufficient_scope", str(exc), reason=exc.reason) from exc
        except DiscoveryFailed as exc:
            description = f"the token could not be checked now ({exc}): retry later"
            raise self._refuse(503, "temporarily_unavailable", description, reason=exc.reason) from exc
        except TokenError as exc:
            raise self._refuse(401, "invalid_token", str(exc), reason=exc.reason) from exc
        return Principal(
            kind="token",
            subject=token.subject,
            scopes=token.scopes,
            client_id=token.client_id,
            claims=dict(token.claims),
        )

    async def _check_session(self, cookie: str) -> Principal:
        client = self._http or httpx.AsyncClient()
        unavailable = "the Threshold session could not be checked now: retry later"
        try:
            response = await client.get(
                self.session_url or "", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=5.0
            )
        except httpx.HTTPError as exc:
            raise self._refuse(
                503, "temporarily_unavailable", unavailable, reason="session_check_failed"
            ) from exc
        finally:
            if self._http is None:
                await client.aclose()
        if response.status_code == 401:
            raise self._refuse(
                401,
                "not_authenticated",
                "the Threshold session is not valid (signed out, expired or revoked): sign in again",
                reason="invalid_session",
            )
        if response.status_code != 200:
            raise self._refuse(503, "temporarily_unavailable", unavailable, reason="session_check_failed")
        body = response.json()
        return Principal(
            kind="session",
            subject=body["user"]["id"],
            email=body["user"].get("email"),
            claims=body,
        )

    async def __call__(self, request: HTTPConnection) -> Principal:
        """`Depends(auth)`: AuthenticationFailed is an HTTPException, so FastAPI answers its status and
        challenge; `handle_authentication_failed` makes the body the middleware's too."""
        return await self.authenticate(request)


class ThresholdAuthMiddleware:
    """Plain ASGI middleware: every HTTP request but `exempt_paths` needs a valid principal, which is
    put into `scope["threshold.principal"]` (and `request.state.principal`)."""

    def __init__(self, app: ASGIApp, auth: ThresholdAuth, *, exempt_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.auth = auth
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.auth.authenticate(HTTPConnection(scope))
        except AuthenticationFailed as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await refusal_response(exc)(scope, receive, send)
            return
        scope["threshold.principal"] = principal
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


__all__ = [
    "AuthenticationFailed",
    "Principal",
    "ThresholdAuth",
    "ThresholdAuthMiddleware",
    "challenge_headers",
    "handle_authentication_failed",
    "refusal_response",
]
