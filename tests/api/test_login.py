"""POST /api/v1/login: a new session every time, no fixation, no enumeration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import SESSION_COOKIE, assert_problem, browser, put_session_cookie, session_token
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email


async def test_login_returns_user_and_a_new_session_each_time(client: httpx.AsyncClient) -> None:
    email = unique_email()
    created = await signup(client, email)
    tokens = {session_token(created)}
    session_ids = {created.json()["session"]["id"]}
    for _ in range(2):
        async with browser(client) as other:
            response = await login(other, email)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["user"]["email"] == email
            assert body["user"]["id"] == created.json()["user"]["id"]
            tokens.add(session_token(response))
            session_ids.add(body["session"]["id"])
    assert len(tokens) == 3
    assert len(session_ids) == 3


async def test_attacker_chosen_session_cookie_is_never_logged_in(client: httpx.AsyncClient) -> None:
    email = unique_email()
    async with browser(client) as owner:
        assert (await signup(owner, email)).status_code == 201
    planted = "attacker-chosen-session-value-0123456789abcdef"
    put_session_cookie(client, planted)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    issued = session_token(response)
    assert issued != planted
    assert client.cookies.get(SESSION_COOKIE) == issued
    async with browser(client) as attacker:
        put_session_cookie(attacker, planted)
        assert_problem(await attacker.get("/api/v1/session"), 401, "not_authenticated")


async def test_login_while_logged_in_replaces_the_old_session(client: httpx.AsyncClient) -> None:
    email = unique_email()
    old = session_token(await signup(client, email))
    response = await login(client, email)
    assert response.status_code == 200
    new = session_token(response)
    assert new != old
    assert (await client.get("/api/v1/session")).status_code == 200
    async with browser(client) as holder_of_old:
        put_session_cookie(holder_of_old, old)
        assert_problem(await holder_of_old.get("/api/v1/session"), 401, "not_authenticated")


async def test_login_with_another_users_valid_token_in_the_jar(client: httpx.AsyncClient) -> None:
    """A fixated cookie that is the attacker's real session: the victim's login ends it, never adopts it."""
    async with browser(client) as attacker:
        attacker_email = unique_email("attacker")
        attacker_token = session_token(await signup(attacker, attacker_email))
    victim_email = unique_email("victim")
    async with browser(client) as victim_device:
        assert (await signup(victim_device, victim_email)).status_code == 201
    put_session_cookie(client, attacker_token)
    response = await login(client, victim_email)
    assert response.status_code == 200
    assert session_token(response) != attacker_token
    me = await client.get("/api/v1/session")
    assert me.json()["user"]["email"] == victim_email
    async with browser(client) as attacker_again:
        put_session_cookie(attacker_again, attacker_token)
        assert (await attacker_again.get("/api/v1/session")).status_code == 401


async def test_login_with_a_stale_token_in_the_jar(client: httpx.AsyncClient) -> None:
    email = unique_email()
    stale = session_token(await signup(client, email))
    await csrf(client)
    assert (await client.post("/api/v1/logout")).status_code == 204
    put_session_cookie(client, stale)
    response = await login(client, email)
    assert response.status_code == 200
    assert session_token(response) != stale


async def test_login_accepts_any_case_of_the_address(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    async with browser(client) as other:
        assert (await login(other, "  " + email.upper())).status_code == 200


async def _failed_login(client: httpx.AsyncClient, email: str, password: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = await client.post("/api/v1/login", json={"email": email, "password": password})
    return response, time.perf_counter() - start


async def test_failures_are_indistinguishable(client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await client_factory(
        rate_limit={"login_per_account_ip": 50, "login_per_account": 50, "login_per_ip": 99}
    )
    existing, disabled = unique_email("existing"), unique_email("disabled")
    for email in (existing, disabled):
        async with browser(client) as other:
            assert (await signup(other, email)).status_code == 201
    services = client.services  # type: ignore[attr-defined]
    await services.accounts.set_disabled(await services.accounts.find_user(disabled), disabled=True)
    await csrf(client)
    await _failed_login(client, unique_email("warmup"), STRONG_PASSWORD)  # the dummy hash is made once

    cases: dict[str, Callable[[], tuple[str, str]]] = {
        "unknown": lambda: (unique_email("nobody"), STRONG_PASSWORD),
        "wrong_password": lambda: (existing, STRONG_PASSWORD + " nope"),
        "disabled": lambda: (disabled, STRONG_PASSWORD),
    }
    bodies: dict[str, set[bytes]] = {name: set() for name in cases}
    statuses: dict[str, set[int]] = {name: set() for name in cases}
    header_names: dict[str, set[frozenset[str]]] = {name: set() for name in cases}
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(7):
        for name, make in cases.items():  # interleaved, so load drifts hit every case alike
            response, elapsed = await _failed_login(client, *make())
            statuses[name].add(response.status_code)
            bodies[name].add(response.content)
            header_names[name].add(frozenset(response.headers.keys()))
            timings[name].append(elapsed)
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")

    assert statuses == {name: {401} for name in cases}
    assert len(set().union(*bodies.values())) == 1, bodies
    assert len(set().union(*header_names.values())) == 1, header_names
    body = next(iter(bodies["unknown"]))
    assert b'"code":"invalid_credentials"' in body
    # The fastest of each: other work on the machine (a parallel test run) only ever adds time, so the
    # minimum is the estimate it disturbs least, and work one case skips shows in it all the same.
    fastest = {name: min(values) for name, values in timings.items()}
    reference = fastest["wrong_password"]
    for value in fastest.values():
        assert 0.5 <= value / reference <= 2.0, fastest
