"""The fast lane answers exactly as the router would.

Each request is sent to two apps on the same services: one with the fast lane (web/hotpath.py) and one
built without it, where every request goes through the router. Status, headers (but Date) and body
must be the same. Successful token responses carry freshly minted tokens, so there each side gets a
request of its own (its own code, its own refresh token) and the tokens are compared by their shape:
the JOSE header and the claim names.

A witness under the fast app's middleware sees every request that reaches the router, so each shape
also proves which way it went: a fast-lane method and path never reach the router there.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.api.helpers import SESSION_COOKIE, USER_AGENT, FakeClock
from tests.conftest import ISSUER, _truncate_pg
from tests.oidc.conftest import pooled_rsa_keys
from tests.oidc.helpers import OP, RP, pkce
from threshold.services import Services, build_services
from threshold.settings import Settings
from threshold.web.api import v1
from threshold.web.app import create_app
from threshold.web.hotpath import FastLaneMiddleware, Lane
from threshold.web.oauth import routes as oauth

__all__ = ["pooled_rsa_keys"]  # a fixture of the OIDC suite

IGNORED_HEADERS = frozenset({"date", "x-request-id"})  # set per request
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token")
SIGNED_IN_LANES = [lane for lane in v1.fast_lane.lanes if lane.method == "GET"]
TOKEN_LANE = Lane("POST", "/oauth2/token", oauth.token)


class Witness:
    """The fast app's router, recording every (method, path) that reaches it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Sent:
    """One request, as both sides get it."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    query: str = ""


@dataclass
class Sides:
    """One deployment's services behind two apps: with the fast lane (`op` drives it) and without."""

    op: OP
    fast: httpx.AsyncClient
    routed: httpx.AsyncClient
    witness: Witness
    lanes: set[tuple[str, str]]

    @property
    def services(self) -> Services:
        return self.op.services

    async def both(self, sent: Sent, other: Sent | None = None) -> tuple[httpx.Response, httpx.Response]:
        """`sent` through the fast app, `other` (or the same again) through the routed one."""
        self.witness.seen.clear()
        fast = await self._send(self.fast, sent)
        routed_by_fast_app = (sent.method, sent.path) in self.witness.seen
        assert routed_by_fast_app is not ((sent.method, sent.path) in self.lanes), self.witness.seen
        return fast, await self._send(self.routed, other or sent)

    @staticmethod
    async def _send(client: httpx.AsyncClient, sent: Sent) -> httpx.Response:
        url = f"{sent.path}?{sent.query}" if sent.query else sent.path
        request = client.build_request(sent.method, url, headers=sent.headers, content=sent.content)
        return await client.send(request)


def _lanes_of(app: FastAPI) -> set[tuple[str, str]]:
    """The (method, path) pairs the app's fast lane answers."""
    middleware: list[Any] = app.user_middleware  # starlette.middleware.Middleware
    (lanes,) = [m.kwargs["lanes"] for m in middleware if m.cls is FastLaneMiddleware]
    return {(lane.method, lane.path) for lane in lanes}


@pytest.fixture
async def sides(
    backend: str, make_settings: Callable[..., Settings], pooled_rsa_keys: None
) -> AsyncIterator[Sides]:
    settings = make_settings()
    services = build_services(settings, clock=FakeClock())
    if backend != "sqlite":
        await _truncate_pg(services)
    fast_app = create_app(settings, services=services)
    routed_app = create_app(settings, services=services, fast_lane=False)
    witness = Witness(fast_app.router)
    fast_app.router = witness  # type: ignore[assignment]  # what the middleware stack is built around
    await services.provider.keys.ensure_keys()

    def client(app: Any, ip: str = "198.51.100.20") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 50000)),
            base_url=ISSUER,
            headers={"user-agent": USER_AGENT},
        )

    clock = services.clock
    assert isinstance(clock, FakeClock)
    op = OP(
        browser=client(fast_app, "203.0.113.7"),
        rp=client(fast_app),
        services=services,
        clock=clock,
        new_client=lambda ip: client(fast_app, ip),
    )
    fast, routed = client(fast_app), client(routed_app)
    yield Sides(op=op, fast=fast, routed=routed, witness=witness, lanes=_lanes_of(fast_app))
    for each in (fast, routed):
        await each.aclose()
    await op.close()
    await services.close()


def _token_shape(token: str) -> Any:
    """A minted token by what it is made of: the JOSE header and claim names, or opaque and its length."""
    if token.count(".") != 2:
        return ("opaque", len(token))
    header, payload, _ = token.split(".")

    def decoded(part: str) -> Any:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    return (decoded(header), sorted(decoded(payload)))


def answer(response: httpx.Response, *, minted: bool = False) -> tuple[int, list[tuple[str, str]], Any]:
    """What a client sees, for comparison; `minted`: the JSON body's tokens by their shape only."""
    headers = sorted(
        (k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in IGNORED_HEADERS
    )
    body: Any = response.content
    if minted:
        body = response.json()
        for name in TOKEN_FIELDS:
            if name in body:
                body[name] = _token_shape(body[name])
        headers = [(k, v) for k, v in headers if k != "content-length"]
    return response.status_code, headers, body


def assert_same(fast: httpx.Response, routed: httpx.Response, *, minted: bool = False) -> None:
    assert answer(fast, minted=minted) == answer(routed, minted=minted)


# --- the session check and forward-auth --------------------------------------------------------------


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


async def _signed_in(sides: Sides) -> tuple[str, str]:
    """(user id, session token) of a new account signed in on the fast side's browser."""
    body = await sides.op.sign_up()
    return body["user"]["id"], sides.op.session_cookie()


async def no_cookie(sides: Sides, path: str) -> Sent:
    return Sent("GET", path)


async def bad_cookie(sides: Sides, path: str) -> Sent:
    return Sent("GET", path, _cookie(secrets.token_urlsafe(32)))


async def empty_cookie(sides: Sides, path: str) -> Sent:
    return Sent("GET", path, _cookie(""))


async def good_cookie(sides: Sides, path: str) -> Sent:
    _, token = await _signed_in(sides)
    return Sent("GET", path, _cookie(token))


async def good_cookie_and_query(sides: Sides, path: str) -> Sent:
    _, token = await _signed_in(sides)
    return Sent("GET", path, _cookie(token), query="next=%2F")


async def expired_session(sides: Sides, path: str) -> Sent:
    _, token = await _signed_in(sides)
    sides.op.clock.advance(sides.services.settings.session.idle_timeout + 1)
    return Sent("GET", path, _cookie(token))


async def disabled_user(sides: Sides, path: str) -> Sent:
    user_id, token = await _signed_in(sides)
    assert await sides.services.users.set_disabled(user_id, True)
    return Sent("GET", path, _cookie(token))


async def second_factor_owed(sides: Sides, path: str) -> Sent:
    user_id, token = await _signed_in(sides)
    assert await sides.services.users.set_mfa_required(user_id, True)
    return Sent("GET", path, _cookie(token))


async def html_without_cookie(sides: Sides, path: str) -> Sent:
    return Sent("GET", path, {"Accept": "text/html,application/xhtml+xml"})


async def head(sides: Sides, path: str) -> Sent:
    _, token = await _signed_in(sides)
    return Sent("HEAD", path, _cookie(token))


async def options(sides: Sides, path: str) -> Sent:
    return Sent("OPTIONS", path, {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})


async def post(sides: Sides, path: str) -> Sent:
    _, token = await _signed_in(sides)
    return Sent("POST", path, {**_cookie(token), "Origin": ISSUER})


SessionShape = Callable[[Sides, str], Awaitable[Sent]]
SESSION_SHAPES: list[SessionShape] = [
    no_cookie,
    bad_cookie,
    empty_cookie,
    good_cookie,
    good_cookie_and_query,
    expired_session,
    disabled_user,
    second_factor_owed,
    html_without_cookie,
    head,
    options,
    post,
]


@pytest.mark.parametrize("shape", SESSION_SHAPES, ids=[s.__name__ for s in SESSION_SHAPES])
@pytest.mark.parametrize("path", [lane.path for lane in SIGNED_IN_LANES])
async def test_signed_in_lanes_answer_as_the_router(sides: Sides, path: str, shape: SessionShape) -> None:
    fast, routed = await sides.both(await shape(sides, path))
    assert_same(fast, routed)


# --- the token endpoint --------------------------------------------------------------------------------


def _form(values: dict[str, str] | list[tuple[str, str]]) -> bytes:
    return urlencode(values).encode()


def _token_request(
    rp: RP | None, values: dict[str, str], *, content_type: str = "application/x-www-form-urlencoded"
) -> Sent:
    headers, form = rp.credentials(values) if rp else ({}, dict(values))
    return Sent("POST", TOKEN_LANE.path, {**headers, "Content-Type": content_type}, _form(form))


async def _service(sides: Sides) -> RP:
    return await sides.op.register(
        grant_types=("client_credentials",),
        scopes=("api:read",),
        redirect_uris=(),
        post_logout_redirect_uris=(),
    )


async def _code_request(sides: Sides, rp: RP, *, verifier: str | None = None) -> Sent:
    code, real_verifier, _ = await sides.op.code(rp)
    values = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp.redirect_uri,
        "code_verifier": verifier or real_verifier,
    }
    return _token_request(rp, values)


async def _refresh_request(sides: Sides, rp: RP) -> Sent:
    tokens = await sides.op.tokens(rp)
    return _token_request(rp, {"grant_type": "refresh_token", "refresh_token": tokens.refresh})


async def test_client_credentials(sides: Sides) -> None:
    rp = await _service(sides)
    sent = _token_request(rp, {"grant_type": "client_credentials", "scope": "api:read"})
    fast, routed = await sides.both(sent)
    assert fast.status_code == 200, fast.text
    assert_same(fast, routed, minted=True)


async def test_authorization_code(sides: Sides) -> None:
    await sides.op.sign_up()
    rp = await sides.op.register()
    fast, routed = await sides.both(await _code_request(sides, rp), await _code_request(sides, rp))
    assert fast.status_code == 200, fast.text
    assert_same(fast, routed, minted=True)


async def test_refresh_token(sides: Sides) -> None:
    await sides.op.sign_up()
    rp = await sides.op.register()
    fast, routed = await sides.both(await _refresh_request(sides, rp), await _refresh_request(sides, rp))
    assert fast.status_code == 200, fast.text
    assert_same(fast, routed, minted=True)


async def test_public_client_code_exchange(sides: Sides) -> None:
    await sides.op.sign_up()
    rp = await sides.op.register(public=True, method="none")
    fast, routed = await sides.both(await _code_request(sides, rp), await _code_request(sides, rp))
    assert fast.status_code == 200, fast.text
    assert_same(fast, routed, minted=True)


async def test_wrong_code_verifier(sides: Sides) -> None:
    await sides.op.sign_up()
    rp = await sides.op.register()
    wrong, _ = pkce()
    fast, routed = await sides.both(
        await _code_request(sides, rp, verifier=wrong), await _code_request(sides, rp, verifier=wrong)
    )
    assert fast.status_code == 400, fast.text
    assert_same(fast, routed)


TokenShape = Callable[[Sides], Awaitable[Sent]]


async def client_credentials_wrong_secret(sides: Sides) -> Sent:
    rp = await _service(sides)
    rp.secret = secrets.token_urlsafe(32)
    return _token_request(rp, {"grant_type": "client_credentials"})


async def client_credentials_unknown_scope(sides: Sides) -> Sent:
    return _token_request(await _service(sides), {"grant_type": "client_credentials", "scope": "api:write"})


async def client_credentials_not_granted(sides: Sides) -> Sent:
    return _token_request(await sides.op.register(), {"grant_type": "client_credentials"})


async def unknown_client(sides: Sides) -> Sent:
    rp = RP(client_id="no-such-client", secret="nope", method="client_secret_basic", signing_alg="Ed25519")
    return _token_request(rp, {"grant_type": "client_credentials"})


async def no_client_authentication(sides: Sides) -> Sent:
    return _token_request(None, {"grant_type": "client_credentials"})


async def unknown_code(sides: Sides) -> Sent:
    rp = await sides.op.register()
    values = {"grant_type": "authorization_code", "code": secrets.token_urlsafe(32)}
    return _token_request(rp, {**values, "redirect_uri": rp.redirect_uri, "code_verifier": pkce()[0]})


async def unknown_refresh_token(sides: Sides) -> Sent:
    rp = await sides.op.register()
    return _token_request(rp, {"grant_type": "refresh_token", "refresh_token": secrets.token_urlsafe(32)})


async def unsupported_grant_type(sides: Sides) -> Sent:
    return _token_request(await sides.op.register(), {"grant_type": "password"})


async def missing_grant_type(sides: Sides) -> Sent:
    return _token_request(await sides.op.register(), {})


async def repeated_parameter(sides: Sides) -> Sent:
    rp = await _service(sides)
    sent = _token_request(rp, {"grant_type": "client_credentials"})
    sent.content = (sent.content or b"") + b"&grant_type=client_credentials"
    return sent


async def too_many_fields(sides: Sides) -> Sent:
    rp = await _service(sides)
    sent = _token_request(rp, {"grant_type": "client_credentials"})
    sent.content = (sent.content or b"") + b"&" + _form([(f"x{i}", "1") for i in range(60)])
    return sent


async def json_body(sides: Sides) -> Sent:
    rp = await _service(sides)
    sent = _token_request(rp, {}, content_type="application/json")
    sent.content = json.dumps({"grant_type": "client_credentials"}).encode()
    return sent


async def no_body(sides: Sides) -> Sent:
    return Sent("POST", TOKEN_LANE.path)


async def get(sides: Sides) -> Sent:
    return Sent("GET", TOKEN_LANE.path, query="grant_type=client_credentials")


async def head_token(sides: Sides) -> Sent:
    return Sent("HEAD", TOKEN_LANE.path)


async def options_token(sides: Sides) -> Sent:
    return Sent("OPTIONS", TOKEN_LANE.path, {"Origin": "https://app.example"})


TOKEN_SHAPES: list[TokenShape] = [
    client_credentials_wrong_secret,
    client_credentials_unknown_scope,
    client_credentials_not_granted,
    unknown_client,
    no_client_authentication,
    unknown_code,
    unknown_refresh_token,
    unsupported_grant_type,
    missing_grant_type,
    repeated_parameter,
    too_many_fields,
    json_body,
    no_body,
    get,
    head_token,
    options_token,
]


@pytest.mark.parametrize("shape", TOKEN_SHAPES, ids=[s.__name__ for s in TOKEN_SHAPES])
async def test_token_endpoint_errors_answer_as_the_router(sides: Sides, shape: TokenShape) -> None:
    fast, routed = await sides.both(await shape(sides))
    assert fast.status_code >= 400, fast.text
    assert_same(fast, routed)


# --- every lane is covered -----------------------------------------------------------------------------


async def test_every_lane_of_the_app_is_covered_here(sides: Sides) -> None:
    covered = {(lane.method, lane.path) for lane in [*SIGNED_IN_LANES, TOKEN_LANE]}
    assert sides.lanes == covered
