"""Authenticating requests in an application: a bearer access token, or (same-site deployments) the
Threshold session cookie checked against the Threshold server on every request, so a revocation
takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.client.errors import MissingScope, TokenError
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


class AuthenticationFailed(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    @property
    def headers(self) -> dict[str, str]:
        if self.status == 503:
            return {"Retry-After": "2"}
        return {"WWW-Authenticate": f'Bearer error="{self.error}"'}


class ThresholdAuth:
    """A FastAPI dependency (`Depends(auth)`) and the engine of ThresholdAuthMiddleware.

    Args:
        verifier: checks bearer access tokens locally.
        session_url: Threshold's `/api/v1/session` URL; when set, the session cookie is accepted too.
        required_scopes: scopes a bearer token must carry (sessions are the user themself).
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        session_url: str | None = None,
        required_scopes: tuple[str, ...] = (),
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.verifier = verifier
        self.session_url = session_url
        self.required_scopes = required_scopes
        self._http = http_client

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        header = connection.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            try:
                token = await self.verifier.averify(header[7:].strip())
                token.require_scopes(*self.required_scopes)
            except MissingScope as exc:
                raise AuthenticationFailed(403, "insufficient_scope", str(exc)) from exc
            except TokenError as exc:
                raise AuthenticationFailed(401, "invalid_token", exc.reason) from exc
            return Principal(
                kind="token",
                subject=token.subject,
                scopes=token.scopes,
                client_id=token.client_id,
                claims=dict(token.claims),
            )
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie and self.session_url:
            return await self._check_session(cookie)
        raise AuthenticationFailed(401, "invalid_token", "authentication required")

    async def _check_session(self, cookie: str) -> Principal:
        client = self._http or httpx.AsyncClient()
        try:
            response = await client.get(
                self.session_url or "", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=5.0
            )
        except httpx.HTTPError as exc:
            raise AuthenticationFailed(503, "temporarily_unavailable", "session check failed") from exc
        finally:
            if self._http is None:
                await client.aclose()
        if response.status_code == 401:
            raise AuthenticationFailed(401, "invalid_token", "the session is not valid")
        if response.status_code != 200:
            raise AuthenticationFailed(503, "temporarily_unavailable", "session check failed")
        body = response.json()
        return Principal(
            kind="session",
            subject=body["user"]["id"],
            email=body["user"].get("email"),
            claims=body,
        )

    async def __call__(self, request: HTTPConnection) -> Principal:
        try:
            return await self.authenticate(request)
        except AuthenticationFailed as exc:
            raise HTTPException(exc.status, exc.description, headers=exc.headers) from None


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
            body = {"error": exc.error, "error_description": exc.description}
            response = JSONResponse(body, status_code=exc.status, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope["threshold.principal"] = principal
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


__all__ = ["AuthenticationFailed", "Principal", "ThresholdAuth", "ThresholdAuthMiddleware"]
