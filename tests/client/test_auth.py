"""ThresholdAuth (a FastAPI dependency) and ThresholdAuthMiddleware (plain ASGI) in an application of
ours: a bearer access token, or the Threshold session cookie checked against a real server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.client.conftest import Threshold
from tests.client.helpers import access_token, forge, generate, verifier_for
from tests.conftest import free_port
from threshold.client import Principal, ThresholdAuth, ThresholdAuthMiddleware, TokenVerifier

FLAVORS = ("dependency", "middleware")
KEY = generate("Ed25519", "app-key")
APP = "http://app.test"


def principal_json(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "subject": principal.subject,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
        "email": principal.email,
    }


def build_app(flavor: str, auth: ThresholdAuth) -> ASGIApp:
    """/me needs a principal; /healthz does not (no dependency, or an exempt path)."""
    if flavor == "dependency":
        api = FastAPI()

        @api.get("/me")
        async def me(principal: Principal = Depends(auth)) -> dict[str, Any]:
            return principal_json(principal)

        @api.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        return api

    async def me_route(request: Request) -> JSONResponse:
        principal = request.state.principal
        assert request.scope["threshold.principal"] is principal
        return JSONResponse(principal_json(principal))

    async def health_route(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "principal": hasattr(request.state, "principal")})

    return Starlette(
        routes=[Route("/me", me_route), Route("/healthz", health_route)],
        middleware=[Middleware(ThresholdAuthMiddleware, auth=auth, exempt_paths=("/healthz",))],
    )


async def call(app: ASGIApp, path: str = "/me", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as http:
        return await http.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def assert_bearer_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["www-authenticate"] == f'Bearer error="{error}"'


# --- bearer tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_valid_bearer_token_yields_a_token_principal(flavor: str) -> None:
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY), required_scopes=("api:read",)))
    token = access_token(KEY, sub="user-9", client_id="spa", scope="openid api:read")
    response = await call(app, authorization=f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "token",
        "subject": "user-9",
        "client_id": "spa",
        "scopes": ["api:read", "openid"],
        "email": None,
    }
    assert (await call(app, authorization=f"bearer {token}")).status_code == 200  # scheme is case-blind


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_missing_or_invalid_token_is_401_invalid_token(flavor: str) -> None:
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY)))
    other = generate("Ed25519", KEY.kid)  # same kid, someone else's key
    unsigned = forge({"alg": "none", "kid": KEY.kid, "typ": "at+jwt"}, {"sub": "admin"})
    odd_alg = forge({"alg": ["Ed25519"], "kid": KEY.kid, "typ": "at+jwt"}, {"sub": "admin"})
    assert_bearer_error(await call(app), 401, "invalid_token")
    for authorization in (
        "Bearer not-a-token",
        "Bearer ",
        f"Bearer {access_token(KEY, exp=1_000_000_000)}",
        f"Bearer {access_token(KEY, aud='https://another-api.test')}",
        f"Bearer {access_token(other)}",
        f"Bearer {unsigned}",
        f"Bearer {odd_alg}",
        f"Basic {access_token(KEY)}",
    ):
        assert_bearer_error(await call(app, authorization=authorization), 401, "invalid_token")


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_token_without_the_required_scopes_is_403_insufficient_scope(flavor: str) -> None:
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY), required_scopes=("orders:write", "api:read")))
    token = access_token(KEY, scope="api:read orders:read")
    assert_bearer_error(await call(app, authorization=f"Bearer {token}"), 403, "insufficient_scope")
    token = access_token(KEY, scope="api:read orders:write")
    assert (await call(app, authorization=f"Bearer {token}")).status_code == 200


async def test_exempt_paths_bypass_the_middleware_and_nothing_else_does() -> None:
    app = build_app("middleware", ThresholdAuth(verifier_for(KEY)))
    response = await call(app, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "principal": False}
    assert_bearer_error(await call(app, "/healthz/"), 401, "invalid_token")
    assert_bearer_error(await call(app, "/me"), 401, "invalid_token")
    body = (await call(app, "/me")).json()
    assert body["error"] == "invalid_token"


# --- the session cookie, checked against a real Threshold -----------------------------------------


@pytest.fixture
def browser() -> Iterator[Browser]:
    with httpx.Client(timeout=30) as http:
        yield Browser(http)


def server_verifier(threshold: Threshold) -> TokenVerifier:
    return TokenVerifier(issuer=threshold.issuer, audience=threshold.issuer)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_the_session_cookie_is_accepted_until_the_user_logs_out(
    flavor: str, threshold: Threshold, browser: Browser
) -> None:
    email = f"app.{secrets.token_hex(4)}@example.com"
    signed_up = browser.signup(threshold.server, email)
    assert signed_up.status_code == 201, signed_up.text
    user_id = signed_up.json()["user"]["id"]
    cookie = browser.session
    assert cookie
    auth = ThresholdAuth(server_verifier(threshold), session_url=f"{threshold.issuer}/api/v1/session")
    app = build_app(flavor, auth)

    response = await call(app, cookie=f"{SESSION_COOKIE}={cookie}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "session",
        "subject": user_id,
        "client_id": None,
        "scopes": [],
        "email": email,
    }

    assert browser.post(threshold.server, "/api/v1/logout").status_code == 204
    assert_bearer_error(await call(app, cookie=f"{SESSION_COOKIE}={cookie}"), 401, "invalid_token")


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_forged_session_cookie_or_one_without_a_session_url_is_refused(
    flavor: str, threshold: Threshold, browser: Browser
) -> None:
    signed_up = browser.signup(threshold.server, f"app.{secrets.token_hex(4)}@example.com")
    assert signed_up.status_code == 201, signed_up.text
    session_url = f"{threshold.issuer}/api/v1/session"
    checked = build_app(flavor, ThresholdAuth(server_verifier(threshold), session_url=session_url))
    forged = secrets.token_urlsafe(32)
    assert_bearer_error(await call(checked, cookie=f"{SESSION_COOKIE}={forged}"), 401, "invalid_token")
    unchecked = build_app(flavor, ThresholdAuth(server_verifier(threshold)))  # bearer-only deployment
    assert_bearer_error(
        await call(unchecked, cookie=f"{SESSION_COOKIE}={browser.session}"), 401, "invalid_token"
    )


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_an_unreachable_session_check_is_503_with_retry_after(flavor: str) -> None:
    session_url = f"http://127.0.0.1:{free_port()}/api/v1/session"
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY), session_url=session_url))
    response = await call(app, cookie=f"{SESSION_COOKIE}={secrets.token_urlsafe(32)}")
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    # a bearer token does not depend on the session check
    assert (await call(app, authorization=f"Bearer {access_token(KEY)}")).status_code == 200
