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
from tests.support import free_port
from threshold.client import (
    AuthenticationFailed,
    Principal,
    ThresholdAuth,
    ThresholdAuthMiddleware,
    TokenVerifier,
    handle_authentication_failed,
)

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


def build_app(flavor: str, auth: ThresholdAuth, *, handler: bool = True) -> ASGIApp:
    """/me needs a principal; /healthz does not (no dependency, or an exempt path). The dependency's app
    installs `handle_authentication_failed` as the README says, unless `handler` is False."""
    if flavor == "dependency":
        api = FastAPI()
        if handler:
            api.add_exception_handler(AuthenticationFailed, handle_authentication_failed)

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


def assert_refused(
    response: httpx.Response, status: int, challenge: str, error: str, reason: str | None = None
) -> dict[str, str]:
    """The status, the exact challenge, and the one body shape both surfaces answer."""
    assert response.status_code == status, response.text
    assert response.headers["www-authenticate"] == challenge
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "error_description", "reason"}, body
    assert body["error"] == error
    assert body["reason"] == (reason or error)
    return body


def assert_bearer_error(response: httpx.Response, status: int, error: str, reason: str | None = None) -> None:
    """RFC 6750 section 3.1: a presented token failed, so the challenge names the error."""
    assert_refused(response, status, f'Bearer error="{error}"', error, reason)


def assert_no_credentials(response: httpx.Response, reason: str) -> str:
    """RFC 6750 section 3: no credentials at all, a bare challenge without an error code."""
    return assert_refused(response, 401, "Bearer", "not_authenticated", reason)["error_description"]


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
async def test_an_invalid_token_is_401_invalid_token_saying_what_is_wrong(flavor: str) -> None:
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY)))
    other = generate("Ed25519", KEY.kid)  # same kid, someone else's key
    unsigned = forge({"alg": "none", "kid": KEY.kid, "typ": "at+jwt"}, {"sub": "admin"})
    odd_alg = forge({"alg": ["Ed25519"], "kid": KEY.kid, "typ": "at+jwt"}, {"sub": "admin"})
    for authorization, reason in (
        ("Bearer not-a-token", "malformed"),
        ("Bearer ", "malformed"),
        (f"Bearer {access_token(KEY, exp=1_000_000_000)}", "expired"),
        (f"Bearer {access_token(KEY, aud='https://another-api.test')}", "wrong_audience"),
        (f"Bearer {access_token(KEY, header={'typ': 'JWT'})}", "wrong_type"),
        (f"Bearer {access_token(other)}", "invalid_signature"),
        (f"Bearer {unsigned}", "unsupported_algorithm"),
        (f"Bearer {odd_alg}", "unsupported_algorithm"),
    ):
        response = await call(app, authorization=authorization)
        assert_bearer_error(response, 401, "invalid_token", reason)
    wrong_audience = await call(
        app, authorization=f"Bearer {access_token(KEY, aud='https://another-api.test')}"
    )
    description = wrong_audience.json()["error_description"]
    assert "'https://another-api.test'" in description and "'https://api.example.test'" in description
    empty = await call(app, authorization="Bearer ")
    assert "the token is empty" in empty.json()["error_description"]


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_no_credentials_get_a_challenge_without_an_error_code(flavor: str) -> None:
    """RFC 6750 section 3.1: a request that "lacks any authentication information (e.g., the client was
    unaware that authentication is necessary or attempted using an unsupported authentication method)"
    gets no error code; the body still says what to send."""
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY)))
    description = assert_no_credentials(await call(app), "missing_credentials")
    assert "Authorization: Bearer <token>" in description
    description = assert_no_credentials(
        await call(app, authorization=f"Basic {access_token(KEY)}"), "unsupported_scheme"
    )
    assert "uses the Basic scheme" in description and "Authorization: Bearer <token>" in description
    description = assert_no_credentials(
        await call(app, cookie=f"{SESSION_COOKIE}={secrets.token_urlsafe(32)}"), "missing_credentials"
    )
    assert "does not accept the Threshold session cookie" in description


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_realm_goes_into_every_challenge(flavor: str) -> None:
    app = build_app(
        flavor, ThresholdAuth(verifier_for(KEY), realm="orders api", required_scopes=("api:read",))
    )
    assert_refused(
        await call(app), 401, 'Bearer realm="orders api"', "not_authenticated", "missing_credentials"
    )
    assert_refused(
        await call(app, authorization="Bearer a.b.c"),
        401,
        'Bearer realm="orders api", error="invalid_token"',
        "invalid_token",
        "malformed",
    )
    assert_refused(
        await call(app, authorization=f"Bearer {access_token(KEY, scope='openid')}"),
        403,
        'Bearer realm="orders api", error="insufficient_scope", scope="api:read"',
        "insufficient_scope",
    )


@pytest.mark.parametrize("realm", ['say "hi"', "back\\slash", "new\nline", ""])
def test_a_realm_that_cannot_be_quoted_is_refused_up_front(realm: str) -> None:
    with pytest.raises(ValueError):
        ThresholdAuth(verifier_for(KEY), realm=realm)
    with pytest.raises(ValueError):
        ThresholdAuth(verifier_for(KEY), required_scopes=("api:read", realm or " "))


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_token_without_the_required_scopes_is_403_insufficient_scope(flavor: str) -> None:
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY), required_scopes=("orders:write", "api:read")))
    token = access_token(KEY, scope="api:read orders:read")
    body = assert_refused(
        await call(app, authorization=f"Bearer {token}"),
        403,
        'Bearer error="insufficient_scope", scope="orders:write api:read"',
        "insufficient_scope",
    )
    assert "lacks the required scope orders:write" in body["error_description"]
    assert "the token has: api:read orders:read" in body["error_description"]
    token = access_token(KEY, scope="api:read orders:write")
    assert (await call(app, authorization=f"Bearer {token}")).status_code == 200


async def test_the_dependency_and_the_middleware_answer_the_same_refusals() -> None:
    auth = ThresholdAuth(verifier_for(KEY), required_scopes=("api:read",))
    dependency, middleware = build_app("dependency", auth), build_app("middleware", auth)
    requests: list[dict[str, str]] = [
        {},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer "},
        {"authorization": "Bearer a.b"},
        {"authorization": f"Bearer {access_token(KEY, aud='https://another-api.test')}"},
        {"authorization": f"Bearer {access_token(KEY, scope='openid')}"},
        {"cookie": f"{SESSION_COOKIE}=x"},
    ]
    for headers in requests:
        ours, theirs = await call(dependency, **headers), await call(middleware, **headers)
        assert ours.status_code == theirs.status_code != 200, headers
        assert ours.headers["www-authenticate"] == theirs.headers["www-authenticate"], headers
        assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
        assert ours.json() == theirs.json(), headers


async def test_without_the_handler_the_dependency_still_answers_the_status_and_the_challenge() -> None:
    """FastAPI's own HTTPException handler renders `{"detail": ...}`; what RFC 6750 rules is the same."""
    app = build_app("dependency", ThresholdAuth(verifier_for(KEY)), handler=False)
    response = await call(app)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in response.json()["detail"]
    response = await call(app, authorization=f"Bearer {access_token(KEY, exp=1_000_000_000)}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "expired" in response.json()["detail"]


async def test_exempt_paths_bypass_the_middleware_and_nothing_else_does() -> None:
    app = build_app("middleware", ThresholdAuth(verifier_for(KEY)))
    response = await call(app, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "principal": False}
    assert_no_credentials(await call(app, "/healthz/"), "missing_credentials")
    assert_no_credentials(await call(app, "/me"), "missing_credentials")


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
    description = assert_no_credentials(
        await call(app, cookie=f"{SESSION_COOKIE}={cookie}"), "invalid_session"
    )
    assert "sign in again" in description


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_forged_session_cookie_or_one_without_a_session_url_is_refused(
    flavor: str, threshold: Threshold, browser: Browser
) -> None:
    signed_up = browser.signup(threshold.server, f"app.{secrets.token_hex(4)}@example.com")
    assert signed_up.status_code == 201, signed_up.text
    session_url = f"{threshold.issuer}/api/v1/session"
    checked = build_app(flavor, ThresholdAuth(server_verifier(threshold), session_url=session_url))
    forged = secrets.token_urlsafe(32)
    # a cookie is not a bearer token: no invalid_token in the challenge, the body says what happened
    assert_no_credentials(await call(checked, cookie=f"{SESSION_COOKIE}={forged}"), "invalid_session")
    unchecked = build_app(flavor, ThresholdAuth(server_verifier(threshold)))  # bearer-only deployment
    assert_no_credentials(
        await call(unchecked, cookie=f"{SESSION_COOKIE}={browser.session}"), "missing_credentials"
    )


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_an_unreachable_session_check_is_503_with_retry_after(flavor: str) -> None:
    session_url = f"http://127.0.0.1:{free_port()}/api/v1/session"
    app = build_app(flavor, ThresholdAuth(verifier_for(KEY), session_url=session_url))
    response = await call(app, cookie=f"{SESSION_COOKIE}={secrets.token_urlsafe(32)}")
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["reason"] == "session_check_failed"
    # a bearer token does not depend on the session check
    assert (await call(app, authorization=f"Bearer {access_token(KEY)}")).status_code == 200


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_an_unreachable_issuer_is_503_not_a_bad_token(flavor: str) -> None:
    """The token may be fine: telling the client to get a new one would not help, retrying will."""
    verifier = TokenVerifier(issuer=f"http://127.0.0.1:{free_port()}", audience="https://api.example.test")
    app = build_app(flavor, ThresholdAuth(verifier))
    response = await call(app, authorization=f"Bearer {access_token(KEY)}")
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "www-authenticate" not in response.headers
    body = response.json()
    assert (body["error"], body["reason"]) == ("temporarily_unavailable", "discovery_failed")
    assert "retry later" in body["error_description"]
