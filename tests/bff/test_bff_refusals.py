"""What the BFF refuses, each against the real Threshold: an ID token that is not this sign-in's
(another sign-in's nonce, another client's audience, a broken signature, expired), a request body over
the limit, and, at logout, a refresh token that must no longer work at Threshold.

The tampered ID tokens come from a provider in the middle: Threshold's real token endpoint, whose answer
is rewritten on its way to the BFF (what an attacker who can substitute a token response would send).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.bff.conftest import CALLS, SpaBrowser, Stack, bff_on
from tests.blackbox.oidc_support import HttpRP
from tests.support import free_port
from tests.support.threaded import ThreadedServer
from threshold.client.bff import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    BackendForFrontend,
    BffConfig,
    RedisSessionStore,
    SessionStore,
    SqlSessionStore,
    _digest,
)


@dataclass
class TokenSwap(httpx.AsyncBaseTransport):
    """Real answers, except that the token endpoint's `id_token` goes through `swap` (when set)."""

    swap: Callable[[str], str] | None = None
    outage: bool = False
    """Threshold's token endpoint unreachable (connection refused)."""
    answer_delay: float = 0.0
    """Seconds Threshold's token answers are held back, after Threshold gave them."""
    issued_refresh: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.outage and request.url.path == "/oauth2/token":
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/oauth2/token":
            return response
        body = json.loads(await response.aread())
        await response.aclose()
        if isinstance(body, dict) and "refresh_token" in body:
            self.issued_refresh.append(body["refresh_token"])
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if isinstance(body, dict) and "id_token" in body:
            self.seen.append(body["id_token"])
            if self.swap is not None:
                body["id_token"] = self.swap(body["id_token"])
        return httpx.Response(response.status_code, json=body, headers={"Cache-Control": "no-store"})

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Tampered:
    stack: Stack
    transport: TokenSwap
    clock_offset: list[float]


@pytest.fixture(scope="module")
def tampered(stack: Stack) -> Iterator[Tampered]:
    transport = TokenSwap()
    offset = [0.0]
    with bff_on(
        stack.deployment,
        stack.threshold,
        stack.upstream,
        http_client=httpx.AsyncClient(transport=transport, timeout=10.0),
        clock=lambda: time.time() + offset[0],
        max_body_bytes=1000,
        upstream_timeout=1.0,
    ) as made:
        yield Tampered(made, transport, offset)


@pytest.fixture
def spa(tampered: Tampered, browser: SpaBrowser) -> Iterator[SpaBrowser]:
    """The signed-up person's browser, at the tampered BFF."""
    yield SpaBrowser(tampered.stack, browser.http, browser.issuer)
    tampered.transport.swap = None
    tampered.transport.outage = False
    tampered.transport.answer_delay = 0.0
    tampered.clock_offset[0] = 0.0


def assert_refused(spa: SpaBrowser, meanwhile: Callable[[dict[str, str]], None] | None = None) -> None:
    done = spa.sign_in(meanwhile=meanwhile)
    assert done.status_code == 400, done.text
    assert "did not accept this sign-in" in done.text and "/bff/login" in done.text
    assert SESSION_COOKIE not in spa.cookies and LOGIN_COOKIE not in spa.cookies
    assert spa.bff("GET", "/bff/user", headers=CALLS).status_code == 401


def test_an_id_token_from_another_sign_in_is_refused(spa: SpaBrowser, tampered: Tampered) -> None:
    """Another sign-in's ID token (same client, same person, valid signature): its nonce is not ours."""
    assert spa.sign_in().status_code == 303  # untouched, the sign-in works
    earlier = tampered.transport.seen[-1]
    spa.bff("POST", "/bff/logout", headers=CALLS)
    tampered.transport.swap = lambda _: earlier
    assert_refused(spa)


def test_an_id_token_for_another_client_is_refused(spa: SpaBrowser, tampered: Tampered, stack: Stack) -> None:
    """A genuine ID token for the same person and with this sign-in's nonce, issued to another
    application: only its audience is wrong."""
    other = HttpRP(
        client_id=stack.client_id,
        secret=stack.client_secret,
        http=spa.http,
        redirect_uri=f"{stack.url}/bff/callback",
    )

    def issue_to_the_other(params: dict[str, str]) -> None:
        code, verifier, _ = other.authorize(spa.issuer, stack.threshold, nonce=params["nonce"])
        foreign = other.exchange(stack.threshold, code, verifier).json()["id_token"]
        tampered.transport.swap = lambda _: foreign

    assert_refused(spa, issue_to_the_other)


def test_an_id_token_with_a_broken_signature_is_refused(spa: SpaBrowser, tampered: Tampered) -> None:
    def forge(token: str) -> str:
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["email"] = "someone.else@example.com"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{forged}.{signature}"

    tampered.transport.swap = forge
    assert_refused(spa)


def test_an_expired_id_token_is_refused(spa: SpaBrowser, tampered: Tampered) -> None:
    tampered.clock_offset[0] = 3600.0  # the BFF's clock an hour on: the ID token has expired
    assert_refused(spa)


def test_a_request_body_over_the_limit_is_refused(spa: SpaBrowser) -> None:
    assert spa.sign_in().status_code == 303
    fits = spa.bff("POST", "/api/orders", headers=CALLS, content=b"x" * 1000)
    assert fits.status_code == 200 and fits.json()["body"] == "x" * 1000
    declared = spa.bff("POST", "/api/orders", headers=CALLS, content=b"x" * 1001)
    assert declared.status_code == 413 and declared.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the BFF counts as it streams
        for _ in range(11):
            yield b"y" * 100

    streamed = spa.bff("POST", "/api/orders", headers=CALLS, content=chunks())
    assert streamed.status_code == 413 and streamed.json()["error"] == "body_too_large"
    assert spa.bff("GET", "/api/orders", headers=CALLS).status_code == 200  # the session goes on


def test_logout_revokes_the_refresh_token_at_threshold(spa: SpaBrowser, tampered: Tampered) -> None:
    """The browser never follows the logout URL here: the refresh token must be dead all the same."""
    assert spa.sign_in().status_code == 303
    store = tampered.stack.bff.store
    session = asyncio.run(store.get(_digest(spa.cookies[SESSION_COOKIE])))
    assert session is not None and session.refresh_token
    assert spa.bff("POST", "/bff/logout", headers=CALLS).status_code == 200
    rp = HttpRP(client_id=tampered.stack.client_id, secret=tampered.stack.client_secret, http=spa.http)
    refused = rp.refresh(tampered.stack.threshold, session.refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


def test_threshold_unreachable_at_refresh_is_a_503_to_retry_and_the_session_survives(
    spa: SpaBrowser, tampered: Tampered
) -> None:
    assert spa.sign_in().status_code == 303
    tampered.transport.outage = True
    tampered.clock_offset[0] = 290.0  # the access token nearly spent: this call must refresh first
    down = spa.bff("GET", "/api/orders", headers=CALLS)
    assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable", down.text
    assert 1 <= int(down.headers["retry-after"]) <= 30
    tampered.transport.outage = False  # Threshold is back: the same session goes on
    assert spa.bff("GET", "/api/orders", headers=CALLS).status_code == 200


def test_an_api_that_is_down_or_slow_is_a_502_or_504(spa: SpaBrowser, tampered: Tampered) -> None:
    assert spa.sign_in().status_code == 303
    slow = spa.bff("GET", "/api/orders?sleep=3", headers=CALLS)  # past the BFF's 1-second limit
    assert slow.status_code == 504 and slow.json()["error"] == "upstream_timeout"
    stack = tampered.stack
    with bff_on(stack.deployment, stack.threshold, f"http://127.0.0.1:{free_port()}") as nowhere:
        browser = SpaBrowser(nowhere, spa.http, spa.issuer)
        assert browser.sign_in().status_code == 303
        down = browser.bff("GET", "/api/orders", headers=CALLS)
    assert down.status_code == 502 and down.json()["error"] == "upstream_unavailable"


def test_encoded_answers_pass_through_as_the_api_encoded_them(spa: SpaBrowser) -> None:
    assert spa.sign_in().status_code == 303
    answer = spa.bff("GET", "/api/orders?gzip=1", headers={**CALLS, "Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
    assert answer.content == b"squeezed " * 100  # decoded here, by the client, once


def test_a_refresh_that_threshold_refuses_ends_the_bff_session(spa: SpaBrowser, tampered: Tampered) -> None:
    """The grant ended at Threshold (here its refresh token revoked, as an operator or the person's
    "sign out of this app" would): the next refresh is refused and the BFF session ends with it."""
    assert spa.sign_in().status_code == 303
    key = _digest(spa.cookies[SESSION_COOKIE])
    session = asyncio.run(tampered.stack.bff.store.get(key))
    assert session is not None and session.refresh_token
    revoked = spa.http.post(
        f"{tampered.stack.threshold.url}/oauth2/revoke",
        data={"token": session.refresh_token, "token_type_hint": "refresh_token"},
        auth=(tampered.stack.client_id, tampered.stack.client_secret),
    )
    assert revoked.status_code == 200, revoked.text
    assert spa.bff("GET", "/api/orders", headers=CALLS).status_code == 200  # the access token still lives
    tampered.clock_offset[0] = 290.0  # nearly spent: the next call refreshes, and is refused
    ended = spa.bff("GET", "/api/orders", headers=CALLS)
    assert ended.status_code == 401 and ended.json()["error"] == "not_signed_in"
    assert asyncio.run(tampered.stack.bff.store.get(key)) is None
    assert spa.bff("GET", "/bff/user", headers=CALLS).status_code == 401


def test_a_session_ended_while_its_refresh_runs_stays_ended(spa: SpaBrowser, tampered: Tampered) -> None:
    """A logout or back-channel logout that lands while Threshold answers a refresh: the refresh must
    not write the session back, and the tokens it got are given back to Threshold."""
    assert spa.sign_in().status_code == 303
    key = _digest(spa.cookies[SESSION_COOKIE])
    store = tampered.stack.bff.store
    tampered.transport.answer_delay = 1.5
    tampered.clock_offset[0] = 290.0  # the next call refreshes
    issued_before = len(tampered.transport.issued_refresh)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(spa.bff, "GET", "/api/orders", headers=CALLS)
        deadline = time.monotonic() + 10
        while len(tampered.transport.issued_refresh) == issued_before:  # Threshold has answered
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert asyncio.run(store.delete(key)) is not None  # what a logout does, meanwhile
        answer = call.result(timeout=30)
    assert answer.status_code == 401 and answer.json()["error"] == "not_signed_in", answer.text
    assert asyncio.run(store.get(key)) is None
    fresh = tampered.transport.issued_refresh[-1]
    rp = HttpRP(client_id=tampered.stack.client_id, secret=tampered.stack.client_secret, http=spa.http)
    assert rp.refresh(tampered.stack.threshold, fresh).status_code == 400  # given back: revoked


def test_paths_that_could_leave_the_apis_base_are_refused(spa: SpaBrowser, tampered: Tampered) -> None:
    """Sent as written (http.client: no client-side normalization), each path would climb out of the
    upstream's /v1 if an API normalized it: 400, and the API never sees it."""
    assert spa.sign_in().status_code == 303
    host, port = tampered.stack.url.removeprefix("http://").split(":")
    cookie = "; ".join(f"{k}={v}" for k, v in spa.cookies.items())

    def raw(path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", path, headers={"Cookie": cookie, "X-CSRF": "1"})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    for path in (
        "/api/../admin",
        "/api/x/../../etc",
        "/api/%2e%2e/admin",
        "/api/%2E./admin",
        "/api/..%2fadmin",
        "/api/a%2Fb",
        "/api/a%5cb",
        "/api/./x",
        "/%61pi/orders",
    ):
        status, body = raw(path)
        assert status in (400, 404), (path, status, body)
        assert b"/v1" not in body, (path, body)  # no answer from the API
    status, body = raw("/api/a%20b/c")  # ordinary encoded paths pass, as sent
    assert status == 200 and json.loads(body)["path"] == "/v1/a b/c", body


def test_what_the_browser_says_about_forwarding_never_reaches_the_api(spa: SpaBrowser) -> None:
    assert spa.sign_in().status_code == 303
    answer = spa.bff(
        "GET",
        "/api/orders",
        headers={
            **CALLS,
            "X-Forwarded-For": "6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop-by-hop by the Connection header",
        },
    )
    body = answer.json()
    assert body["forwarded_for"] == "127.0.0.1", body  # the BFF's own view of the client
    assert body["real_ip"] is None and body["forwarded"] is None and body["secret"] is None, body


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_a_session_store_that_is_down_is_a_503_to_retry(stack: Stack, kind: str) -> None:
    """Redis or the BFF's database unreachable: every call that needs a session answers 503 with
    Retry-After (not a 500), and says nothing about the store beyond that."""
    nowhere = free_port()
    store: SessionStore = (
        RedisSessionStore.from_url(f"redis://127.0.0.1:{nowhere}")
        if kind == "redis"
        else SqlSessionStore.from_url(f"postgresql://postgres@127.0.0.1:{nowhere}/none")
    )
    bff = BackendForFrontend(
        BffConfig(
            issuer=stack.threshold.url,
            client_id=stack.client_id,
            client_secret=stack.client_secret,
            upstream=stack.upstream,
            public_url=stack.url,
        ),
        store=store,
    )
    server = ThreadedServer(bff.app, proxy_headers=False, lifespan="on").start()
    try:
        cookie = {"Cookie": f"{SESSION_COOKIE}=anything", **CALLS}
        for method, path in (("GET", "/bff/user"), ("GET", "/api/orders"), ("POST", "/bff/logout")):
            answer = httpx.request(method, server.url + path, headers=cookie, timeout=30)
            assert answer.status_code == 503, (path, answer.text)
            assert (
                answer.headers["retry-after"] == "5" and answer.json()["error"] == "temporarily_unavailable"
            )
            assert str(nowhere) not in answer.text
    finally:
        server.stop()
