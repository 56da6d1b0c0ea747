"""A small web application that signs its users in with Threshold through Authlib's Starlette client.

It is configured the way Authlib's documentation and Threshold's README show, and nothing more: the
provider's discovery document, the client id and secret from `threshold clients create`, the scopes, and
PKCE S256 (which Threshold requires of every client). Everything else (client authentication, ID token
algorithms and checks, nonce, state) is left at the library's defaults.

Run it with uvicorn's factory mode, configured by the environment:

    RP_ISSUER=http://localhost:8400 RP_CLIENT_ID=... RP_CLIENT_SECRET=... RP_BASE_URL=http://127.0.0.1:8500 \
        python -m uvicorn --factory tests.e2e.rp.authlib_app:from_environment --host 127.0.0.1 --port 8500

Routes: `/` (who is signed in, or a "Sign in" link), `/login`, `/callback`, `/logout` (RP-initiated logout),
and `POST /backchannel-logout`: logout tokens from Threshold, checked by `threshold.client.BackchannelLogout`,
end this application's sessions of that Threshold session (`sid`) or person (`sub`) at once. Register it
with `--backchannel-logout-uri {RP_BASE_URL}/backchannel-logout`.
"""

from __future__ import annotations

import html
import os
import secrets
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.client import BackchannelLogout, LogoutEvent

SESSION_COOKIE = "rp_session"


class MemorySessions:
    """`request.session` for Authlib: a dict per browser, kept in this process, keyed by a random cookie.

    (Starlette's SessionMiddleware would do as well, but it needs `itsdangerous`, which Threshold does not
    install; a server-side session is what the README recommends to applications anyway.)
    """

    def __init__(self, app: ASGIApp, sessions: dict[str, dict[str, Any]]) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = Request(scope).cookies.get(SESSION_COOKIE, "")
        is_new = session_id not in self.sessions
        if is_new:
            session_id = secrets.token_urlsafe(32)
            self.sessions[session_id] = {}
        scope["session"] = self.sessions[session_id]

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and is_new:
                cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Example app (Authlib)</title>'
        f"<h1>Example app (Authlib)</h1>{body}</html>",
        status_code=status,
    )


def create_app(*, issuer: str, client_id: str, client_secret: str, base_url: str) -> Starlette:
    """The application, for the provider at `issuer`, itself served at `base_url`."""
    oauth = OAuth()
    oauth.register(
        name="threshold",
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_id=client_id,
        client_secret=client_secret,
        client_kwargs={"scope": "openid email", "code_challenge_method": "S256"},
    )
    provider: Any = oauth.threshold
    sessions: dict[str, dict[str, Any]] = {}
    receiver = BackchannelLogout(issuer=issuer, client_id=client_id)

    async def end_sessions(event: LogoutEvent) -> None:
        """The person's session at Threshold ended: so do this application's sessions resting on it."""
        for session in sessions.values():
            user = session.get("user") or {}
            if (event.sid and user.get("sid") == event.sid) or (
                not event.sid and user.get("sub") == event.sub
            ):
                session.clear()

    async def home(request: Request) -> Response:
        notice = ""
        if request.query_params.get("state"):  # back from the provider's end_session_endpoint
            try:
                await provider.validate_logout_response(request)
                notice = '<p role="status" id="notice">You are signed out.</p>'
            except OAuthError as error:
                notice = f'<p role="alert" id="notice">Sign-out answer refused: {html.escape(str(error))}</p>'
        user = request.session.get("user")
        if user:
            email = html.escape(str(user.get("email")))
            return _page(f'{notice}<p id="status">Signed in as {email}</p><a href="/logout">Sign out</a>')
        return _page(f'{notice}<p id="status">Not signed in.</p><a href="/login">Sign in</a>')

    async def login(request: Request) -> Response:
        # the application's own language choice, as OIDC lets it ask for the provider's pages
        locales = (
            {"ui_locales": request.query_params["ui_locales"]} if "ui_locales" in request.query_params else {}
        )
        response: Response = await provider.authorize_redirect(request, f"{base_url}/callback", **locales)
        return response

    async def callback(request: Request) -> Response:
        try:
            token = await provider.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})
            if "email" not in claims:
                claims.update(await provider.userinfo(token=token))
        except OAuthError as error:
            code, detail = html.escape(error.error), html.escape(error.description or "")
            return _page(
                f'<p>Sign-in failed.</p><p id="error">{code}</p><p id="detail">{detail}</p>'
                '<a href="/login">Sign in</a>',
                status=400,
            )
        except Exception as error:  # shown on the page: the test reports what the library refused
            detail = html.escape(f"{type(error).__module__}.{type(error).__name__}: {error}")
            return _page(
                f'<p>Sign-in failed.</p><p id="error">{html.escape(type(error).__name__)}</p>'
                f'<p id="detail">{detail}</p><a href="/login">Sign in</a>',
                status=502,
            )
        request.session["user"] = {
            "sub": claims.get("sub"),
            "email": claims.get("email"),
            "sid": claims.get("sid"),
        }
        request.session["id_token"] = token.get("id_token")
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        request.session.pop("user", None)
        id_token = request.session.pop("id_token", None)
        response: Response = await provider.logout_redirect(
            request, post_logout_redirect_uri=f"{base_url}/", id_token_hint=id_token
        )
        return response

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # keeps the browser's console free of a 404

    routes = [
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/login", login),
        Route("/callback", callback),
        Route("/logout", logout),
        Route("/backchannel-logout", receiver.endpoint(end_sessions), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(MemorySessions, sessions=sessions)
    return app


def from_environment() -> Starlette:
    """uvicorn --factory entry point: RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_BASE_URL."""
    return create_app(
        issuer=os.environ["RP_ISSUER"].rstrip("/"),
        client_id=os.environ["RP_CLIENT_ID"],
        client_secret=os.environ["RP_CLIENT_SECRET"],
        base_url=os.environ["RP_BASE_URL"].rstrip("/"),
    )
