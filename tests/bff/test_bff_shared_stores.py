"""Two BFF processes behind one public name, sharing their sessions in Redis, PostgreSQL or SQLite: a
session made on one is served by the other, one refresh at a time across both, a back-channel logout
received by one ends the session everywhere, a sign-in's state is taken once, and a refresh lock whose
holder died is waited out, not forever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.bff.conftest import CALLS, SpaBrowser, Stack, register_spa, upstream_app
from tests.blackbox.oidc_support import IssuerBrowser
from tests.conftest import STRONG_PASSWORD
from tests.support import REDIS_URL, create_pg_database, drop_pg_database, free_port, make_deployment
from tests.support.threaded import ThreadedServer
from threshold.client.bff import (
    SESSION_COOKIE,
    BackendForFrontend,
    BffConfig,
    RedisSessionStore,
    SessionStore,
    SqlSessionStore,
)

STORES = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
    "sqlite",
]


@pytest.fixture(scope="module", params=STORES)
def make_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SessionStore]]:
    """A factory of stores on one shared backend: each call is another process's view of it."""
    kind = request.param
    if kind == "redis":
        request.getfixturevalue("redis_url")  # Redis answers (or the test skips, or fails under CI)
        prefix = f"thtest-bff-{time.time_ns()}:"
        yield lambda **options: RedisSessionStore.from_url(REDIS_URL, prefix=prefix, **options)
    elif kind == "postgres":
        url = create_pg_database("bff")
        try:
            yield lambda **options: SqlSessionStore.from_url(url, **options)
        finally:
            drop_pg_database(url)
    else:
        path = tmp_path_factory.mktemp("bff-sqlite") / "bff.db"
        yield lambda **options: SqlSessionStore.from_url(f"sqlite:///{path}", **options)


@dataclass
class Pair:
    a: Stack
    b: Stack


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, make_store: Callable[..., SessionStore]) -> Iterator[Pair]:
    with make_deployment(tmp_path_factory.mktemp("bff-redis"), "sqlite") as deployment:
        threshold = deployment.start()
        upstream = ThreadedServer(upstream_app(threshold.url)).start()
        port_a, port_b = free_port(), free_port()
        public = f"http://127.0.0.1:{port_a}"  # the name both answer as (behind a load balancer)
        client = register_spa(deployment, public)
        stacks = []
        for port in (port_a, port_b):
            bff = BackendForFrontend(
                BffConfig(
                    issuer=threshold.url,
                    client_id=client["client_id"],
                    client_secret=client["client_secret"],
                    upstream=upstream.url + "/v1",
                    public_url=public,
                ),
                store=make_store(),
            )
            server = ThreadedServer(bff.app, port=port, lifespan="on").start()
            stacks.append(
                Stack(
                    deployment,
                    threshold,
                    bff,
                    server,
                    client["client_id"],
                    client["client_secret"],
                    upstream.url + "/v1",
                )
            )
        try:
            yield Pair(*stacks)
        finally:
            for stack in stacks:
                stack.bff_server.stop()
            upstream.stop()


@pytest.fixture
def browser(pair: Pair) -> Iterator[SpaBrowser]:
    with httpx.Client(timeout=30) as http:
        issuer = IssuerBrowser(http)
        email = f"spa-shared-{time.time_ns()}@example.com"
        assert issuer.signup(pair.a.threshold, email, STRONG_PASSWORD).status_code in (200, 201)
        yield SpaBrowser(pair.a, http, issuer)


def on(browser: SpaBrowser, stack: Stack) -> SpaBrowser:
    return SpaBrowser(stack, browser.http, browser.issuer, browser.cookies)


def test_a_session_made_on_one_process_is_served_by_the_other(browser: SpaBrowser, pair: Pair) -> None:
    assert browser.sign_in().status_code == 303
    other = on(browser, pair.b)
    assert other.bff("GET", "/bff/user", headers=CALLS).status_code == 200
    assert other.bff("GET", "/api/x", headers=CALLS).status_code == 200


def test_one_refresh_across_both_processes(browser: SpaBrowser, pair: Pair) -> None:
    browser.sign_in()
    refreshes: list[str] = []
    originals = [pair.a.bff._token_request, pair.b.bff._token_request]

    def counting(original: Any) -> Any:
        async def wrapped(form: Any) -> dict[str, Any]:
            if form.get("grant_type") == "refresh_token":
                refreshes.append(form["refresh_token"])
            result: dict[str, Any] = await original(form)
            return result

        return wrapped

    for stack, original in zip((pair.a, pair.b), originals, strict=True):
        stack.bff._token_request = counting(original)  # type: ignore[method-assign]
        stack.bff._clock = lambda: time.time() + 290  # the access token nearly spent
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(
                        http.get(f"{stack.url}/api/x", headers={**CALLS, "Cookie": cookie})
                        for _ in range(6)
                        for stack in (pair.a, pair.b)
                    )
                )
            return [a.status_code for a in answers]

        assert asyncio.run(burst()) == [200] * 12
        assert len(refreshes) == 1
    finally:
        for stack, original in zip((pair.a, pair.b), originals, strict=True):
            stack.bff._token_request = original  # type: ignore[method-assign]
            stack.bff._clock = time.time


def test_a_back_channel_logout_received_by_one_process_ends_the_session_on_both(
    browser: SpaBrowser, pair: Pair
) -> None:
    browser.sign_in()
    cookie = browser.cookies[SESSION_COOKIE]
    other = on(browser, pair.b)
    assert other.bff("GET", "/bff/user", headers=CALLS).status_code == 200
    assert browser.issuer.post(pair.a.threshold, "/api/v1/logout").status_code in (200, 204)
    deadline = time.monotonic() + 10  # Threshold posts the logout token to the public name: process A
    while other.bff("GET", "/bff/user", headers=CALLS).status_code != 401:
        assert time.monotonic() < deadline, "process B still serves the session"
        time.sleep(0.1)
        other.cookies[SESSION_COOKIE] = cookie


def test_a_sign_in_state_is_taken_once_whichever_process_gets_it(browser: SpaBrowser, pair: Pair) -> None:
    started = browser.bff("GET", "/bff/login")
    authorize = urlsplit(started.headers["location"])
    answered = browser.issuer.get(pair.a.threshold, f"{authorize.path}?{authorize.query}")
    callback = urlsplit(answered.headers["location"]).query
    login_cookie = dict(browser.cookies)
    assert on(browser, pair.b).bff("GET", f"/bff/callback?{callback}").status_code == 303
    replay = SpaBrowser(pair.a, browser.http, browser.issuer, login_cookie)
    assert replay.bff("GET", f"/bff/callback?{callback}").status_code == 400


def test_a_refresh_lock_whose_holder_died_is_waited_out_not_forever(
    make_store: Callable[..., SessionStore],
) -> None:
    """Process A takes the lock and dies holding it; process B waits about the lock's lifetime, then goes
    on (a refresh that waited forever would hang every call of that session)."""
    lifetime = 0.6

    async def scenario() -> float:
        dead, alive = make_store(lock_seconds=lifetime), make_store(lock_seconds=lifetime)
        key = f"lock-{time.time_ns()}"
        held = dead.refreshing(key)  # kept referenced: a collected one would release in its finally
        await held.__aenter__()  # entered, never left: its holder is gone
        started = time.monotonic()
        async with alive.refreshing(key):
            waited = time.monotonic() - started
        async with alive.refreshing(key):  # released properly this time: no wait
            assert time.monotonic() - started - waited < lifetime / 2
        await held.__aexit__(None, None, None)  # (tidy: the lock it names is no longer its own)
        for store in (dead, alive):
            await store.aclose()
        return waited

    waited = asyncio.run(scenario())
    assert lifetime * 0.8 <= waited <= lifetime * 3, waited


def test_one_callback_wins_when_the_same_one_arrives_at_both_processes_at_once(
    browser: SpaBrowser, pair: Pair
) -> None:
    """The same callback (state, code and the sign-in's cookie) sent 8 times at once, half to each
    process: one signs in; every other is refused because the state was taken, before any of them could
    spend the code at Threshold (which would refuse it too, with another message)."""
    started = browser.bff("GET", "/bff/login")
    authorize = urlsplit(started.headers["location"])
    answered = browser.issuer.get(pair.a.threshold, f"{authorize.path}?{authorize.query}")
    callback = urlsplit(answered.headers["location"]).query
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.get(f"{stack.url}/bff/callback?{callback}", headers={"Cookie": cookie})
                        for _ in range(4)
                        for stack in (pair.a, pair.b)
                    )
                )
            )

    answers = asyncio.run(race())
    assert sorted(a.status_code for a in answers) == [303] + [400] * 7
    assert all("already used" in a.text for a in answers if a.status_code == 400)
