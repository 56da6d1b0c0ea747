"""The demo's small applications, one per architecture, each an ASGI app factory for uvicorn
(`uvicorn demo.apps:shop --factory`), configured by DEMO_* environment variables that `demo.run` sets.

- `shop`: a server-rendered app on Threshold's own origin (behind nginx), signed in by the Threshold
  session cookie through ThresholdAuth, its JSON under ThresholdAuthMiddleware (architecture 1).
- `orders_api`: an API that trusts Threshold's JWT access tokens (TokenVerifier) (architecture 3).
- `service`: a back-end service that calls the API with a client_credentials token (architecture 3).
- `native`: a desktop-style app signing in through the browser with a loopback redirect on a port the
  operating system picks, as a public client with PKCE (architecture 5): the README's example.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import threading
from html import escape
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from threshold.client import AuthenticationFailed, ThresholdAuth, ThresholdAuthMiddleware, TokenVerifier

ORDERS: list[dict[str, str | int]] = [
    {"id": "A-1001", "item": "Hardware security key", "qty": 2},
    {"id": "A-1002", "item": "Lanyard", "qty": 1},
]


def _env(name: str) -> str:
    return os.environ[f"DEMO_{name}"]


def _page(title: str, *body: str, refresh: int | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        "<style>body{font:16px system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}"
        "pre{background:#f4f4f8;padding:1rem;overflow:auto}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{''.join(body)}</main></body></html>",
        headers={"Cache-Control": "no-store"},
    )


def _claims(token: str) -> dict[str, Any]:
    """A JWT's payload, for display only (the API verifies; this page just shows what it got)."""
    payload = token.split(".")[1]
    shown: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return shown


# --- 1. the server-rendered app ---------------------------------------------------------------------------


def shop() -> Starlette:
    issuer = _env("ISSUER")
    auth = ThresholdAuth(
        TokenVerifier(issuer=issuer, audience=issuer),
        session_url=f"{_env('THRESHOLD_INTERNAL')}/api/v1/session",
    )

    async def home(request: Request) -> Response:
        try:
            principal = await auth.authenticate(request)
        except AuthenticationFailed as refused:
            if refused.status_code == 401:  # not signed in (or signed out, revoked): to Threshold's page
                return RedirectResponse("/login?next=/shop/", status_code=303)
            return _page("The shop is unavailable", "<p>Threshold could not be asked. Try again.</p>")
        rows = "".join(
            f"<li>{escape(str(o['id']))}: {o['qty']} x {escape(str(o['item']))}</li>" for o in ORDERS
        )
        return _page(
            "Shop (server-rendered)",
            f'<p id="who">Signed in as {escape(principal.email or principal.subject)}</p>',
            f"<h2>Your orders</h2><ul>{rows}</ul>",
            "<p>The same as JSON, under ThresholdAuthMiddleware: "
            '<a href="/shop/api/orders">/shop/api/orders</a></p>',
            '<p><a href="/account">Your account at Threshold</a> '
            "(sign out there: this page follows at once)</p>",
        )

    async def orders(request: Request) -> JSONResponse:
        principal = request.state.principal
        return JSONResponse({"user": principal.subject, "email": principal.email, "orders": ORDERS})

    api = Starlette(routes=[Route("/orders", orders)])
    return Starlette(
        routes=[
            Route("/shop/", home),
            Mount("/shop/api", app=ThresholdAuthMiddleware(api, auth)),
        ]
    )


# --- 3. the API and the service calling it ----------------------------------------------------------------


def orders_api() -> Starlette:
    issuer = _env("ISSUER")
    auth = ThresholdAuth(TokenVerifier(issuer=issuer, audience=issuer))

    async def orders(request: Request) -> JSONResponse:
        principal = request.state.principal
        return JSONResponse(
            {
                "sub": principal.subject,
                "client_id": principal.client_id,
                "scopes": sorted(principal.scopes),
                "jti": principal.claims.get("jti"),
                "orders": ORDERS,
            }
        )

    async def index(request: Request) -> HTMLResponse:
        return _page(
            "Orders API",
            "<p>Every call needs <code>Authorization: Bearer &lt;access token&gt;</code> from Threshold; "
            "this page is the only one without.</p>",
            f'<p>Try the service that calls it: <a href="{escape(_env("SERVICE_URL"))}/">'
            f"{escape(_env('SERVICE_URL'))}</a></p>",
        )

    protected = ThresholdAuthMiddleware(Starlette(routes=[Route("/orders", orders)]), auth)
    return Starlette(routes=[Route("/", index), Mount("/", app=protected)])


def service() -> Starlette:
    issuer = _env("ISSUER")

    async def home(request: Request) -> Response:
        async with httpx.AsyncClient(timeout=10) as http:
            metadata = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
            issued = await http.post(
                metadata["token_endpoint"],
                data={"grant_type": "client_credentials", "scope": "orders:read"},
                auth=(_env("SERVICE_CLIENT_ID"), _env("SERVICE_CLIENT_SECRET")),
            )
            token = issued.json()["access_token"]
            called = await http.get(f"{_env('API_URL')}/orders", headers={"Authorization": f"Bearer {token}"})
            unauthenticated = await http.get(f"{_env('API_URL')}/orders")
        claims = {
            k: v
            for k, v in _claims(token).items()
            if k in ("iss", "aud", "sub", "client_id", "scope", "iat", "exp")
        }
        return _page(
            "Service calling the Orders API",
            "<p>This service got an access token with <code>client_credentials</code> "
            "and called the API:</p>",
            f'<p id="answer">API answered {called.status_code}</p>',
            f"<pre>{escape(json.dumps(called.json(), indent=2))}</pre>",
            f"<p>The token's claims (it lives {claims['exp'] - claims['iat']} seconds):</p>",
            f"<pre>{escape(json.dumps(claims, indent=2))}</pre>",
            f'<p id="without">Without a token the API answers {unauthenticated.status_code}.</p>',
        )

    return Starlette(routes=[Route("/", home)])


# --- 5. the native-style app ------------------------------------------------------------------------------


class _Callback(http.server.BaseHTTPRequestHandler):
    """The one-shot loopback listener: it takes the authorization response, then the app goes on."""

    def do_GET(self) -> None:
        self.server.answer = self.path  # type: ignore[attr-defined]
        app_url = self.server.app_url  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(
            f"<!doctype html><title>Signed in</title><p>Signed in: close this tab, or go "
            f'<a href="{escape(app_url)}/">back to the app</a>.</p>'.encode()
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


def native() -> Starlette:
    """The app's window is this page; "Sign in" does what a desktop app does with webbrowser.open()."""
    from authlib.integrations.requests_client import OAuth2Session

    issuer, client_id, app_url = _env("ISSUER"), _env("NATIVE_CLIENT_ID"), _env("NATIVE_URL")
    state: dict[str, Any] = {}

    def finish(server: http.server.HTTPServer, oauth: Any, verifier: str, endpoints: dict[str, str]) -> None:
        server.timeout = 600
        server.handle_request()
        server.server_close()
        answer = getattr(server, "answer", None)
        if answer is None:
            state.update(status="no answer from the browser")
            return
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            tokens = oauth.fetch_token(
                endpoints["token_endpoint"], authorization_response=base + answer, code_verifier=verifier
            )
            person = oauth.get(endpoints["userinfo_endpoint"]).json()
            renewed = oauth.refresh_token(endpoints["token_endpoint"], refresh_token=tokens["refresh_token"])
        except Exception as error:  # shown in the app's window: a demo, not a library
            state.update(status=f"sign-in failed: {error}")
            return
        state.update(
            status="signed in",
            email=person.get("email"),
            port=server.server_port,
            rotated=renewed["refresh_token"] != tokens["refresh_token"],
        )

    async def home(request: Request) -> HTMLResponse:
        status = state.get("status")
        if status == "signed in":
            return _page(
                "Desktop app",
                f'<p id="who">Signed in as {escape(str(state["email"]))}</p>',
                f"<p>The browser came back to http://127.0.0.1:{state['port']}/callback, a port the "
                "operating system picked; the app exchanged the code (PKCE, no secret) and refreshed "
                f"its tokens once: rotated {'yes' if state['rotated'] else 'NO'}.</p>",
                '<p><a href="/signin">Sign in again</a></p>',
            )
        if status == "waiting":
            return _page("Desktop app", '<p id="who">Waiting for the browser…</p>', refresh=1)
        shown = f"<p>{escape(status)}</p>" if status else ""
        return _page(
            "Desktop app",
            '<p id="who">Not signed in.</p>',
            shown,
            '<p><a href="/signin">Sign in with the browser</a></p>',
        )

    async def signin(request: Request) -> Response:
        async with httpx.AsyncClient(timeout=10) as http:
            endpoints = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
        server = http_server()
        server.app_url = app_url  # type: ignore[attr-defined]
        oauth = OAuth2Session(
            client_id,
            redirect_uri=f"http://127.0.0.1:{server.server_port}/callback",
            scope="openid email offline_access",
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        verifier = secrets.token_urlsafe(64)
        url, _ = oauth.create_authorization_url(endpoints["authorization_endpoint"], code_verifier=verifier)
        state.clear()
        state["status"] = "waiting"
        threading.Thread(target=finish, args=(server, oauth, verifier, endpoints), daemon=True).start()
        return RedirectResponse(url, status_code=303)  # a desktop app: webbrowser.open(url)

    def http_server() -> http.server.HTTPServer:
        return http.server.HTTPServer(("127.0.0.1", 0), _Callback)  # any free port

    return Starlette(routes=[Route("/", home), Route("/signin", signin)])
