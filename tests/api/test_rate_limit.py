"""Throttling of sign-in and sign-up: 429 with Retry-After, no enumeration, no lock-out of the owner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import FakeClock, assert_problem, browser
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email

LIMITS = {"login_per_account_ip": 3, "login_per_account": 5, "login_per_ip": 8, "window": 60}
WRONG = "definitely not the password"


async def _attempt(client: httpx.AsyncClient, email: str, password: str = WRONG) -> httpx.Response:
    return await client.post("/api/v1/login", json={"email": email, "password": password})


def _assert_throttled(response: httpx.Response, window: int = 60) -> None:
    assert_problem(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert response.json()["retry_after"] == int(response.headers["retry-after"])


async def test_failures_are_throttled_alike_for_existing_and_unknown_accounts(
    clocked_client_factory: Callable[..., Any],
) -> None:
    clock = FakeClock()
    client: httpx.AsyncClient = await clocked_client_factory(clock, rate_limit=LIMITS)
    existing = unique_email("existing")
    async with browser(client) as owner:
        assert (await signup(owner, existing)).status_code == 201
    await csrf(client)
    outcomes: dict[str, list[int]] = {}
    bodies: dict[str, bytes] = {}
    for email in (existing, unique_email("unknown")):
        statuses = [(await _attempt(client, email)).status_code for _ in range(3)]
        throttled = await _attempt(client, email)
        _assert_throttled(throttled)
        outcomes[email] = [*statuses, throttled.status_code]
        bodies[email] = throttled.content
    assert list(outcomes.values()) == [[401, 401, 401, 429]] * 2
    assert len(set(bodies.values())) == 1

    # the right password does not get through while throttled
    _assert_throttled(await _attempt(client, existing, STRONG_PASSWORD))

    clock.advance(61)
    response = await login(client, existing)
    assert response.status_code == 200, response.text


async def test_throttle_per_address_covers_many_accounts(clocked_client_factory: Callable[..., Any]) -> None:
    clock = FakeClock()
    client: httpx.AsyncClient = await clocked_client_factory(clock, rate_limit=LIMITS)
    email = unique_email()
    async with browser(client, ip="192.0.2.200") as owner:
        assert (await signup(owner, email)).status_code == 201
    await csrf(client)
    for _ in range(8):  # a spray over many accounts from one address
        assert (await _attempt(client, unique_email("spray"))).status_code == 401
    _assert_throttled(await _attempt(client, unique_email("spray")))
    _assert_throttled(await _attempt(client, email, STRONG_PASSWORD))
    # a different address is not affected
    async with browser(client, ip="192.0.2.201") as elsewhere:
        assert (await login(elsewhere, email)).status_code == 200
    clock.advance(61)
    assert (await login(client, email)).status_code == 200


async def test_spoofed_forwarded_for_does_not_reset_the_throttle(
    clocked_client_factory: Callable[..., Any],
) -> None:
    client: httpx.AsyncClient = await clocked_client_factory(FakeClock(), rate_limit=LIMITS)
    await csrf(client)
    email = unique_email()
    for n in range(3):
        response = await client.post(
            "/api/v1/login",
            json={"email": email, "password": WRONG},
            headers={"x-forwarded-for": f"10.0.0.{n}", "x-real-ip": f"10.0.1.{n}"},
        )
        assert response.status_code == 401
    _assert_throttled(
        await client.post(
            "/api/v1/login", json={"email": email, "password": WRONG}, headers={"x-forwarded-for": "10.9.9.9"}
        )
    )


async def test_familiar_network_still_signs_in_when_the_account_is_under_attack(
    clocked_client_factory: Callable[..., Any],
) -> None:
    clock = FakeClock()
    client: httpx.AsyncClient = await clocked_client_factory(clock, rate_limit=LIMITS)
    email = unique_email()
    assert (await signup(client, email)).status_code == 201  # from 203.0.113.7: a familiar /24
    for ip, tries in (("198.51.100.9", 3), ("198.51.100.10", 2)):  # 5 failures exhaust the account
        async with browser(client, ip=ip) as attacker:
            await csrf(attacker)
            for _ in range(tries):
                assert (await _attempt(attacker, email)).status_code == 401
    async with browser(client, ip="192.0.2.50") as stranger:
        _assert_throttled(await login(stranger, email))  # right password, unfamiliar network
    async with browser(client, ip="203.0.113.99") as home:
        response = await login(home, email)  # same /24 as the sign-up
        assert response.status_code == 200, response.text
    clock.advance(61)
    async with browser(client, ip="192.0.2.50") as stranger:
        assert (await login(stranger, email)).status_code == 200


async def test_password_change_guesses_are_throttled(clocked_client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await clocked_client_factory(FakeClock(), rate_limit=LIMITS)
    await signup(client, unique_email())
    await csrf(client)
    body = {"current_password": WRONG, "new_password": "a brand new passphrase 5"}
    for _ in range(3):
        assert_problem(
            await client.post("/api/v1/password/change", json=body), 403, "current_password_incorrect"
        )
    _assert_throttled(await client.post("/api/v1/password/change", json=body))


async def test_signup_is_limited_per_address(clocked_client_factory: Callable[..., Any]) -> None:
    clock = FakeClock()  # a frozen clock: the hourly window cannot roll over mid-test
    client: httpx.AsyncClient = await clocked_client_factory(clock, rate_limit={"signup_per_ip": 2})
    await csrf(client)
    for _ in range(2):
        response = await client.post("/api/v1/signup", json={"email": unique_email(), "password": "short"})
        assert_problem(response, 422, "password_too_short")
    email = unique_email()
    response = await client.post("/api/v1/signup", json={"email": email, "password": STRONG_PASSWORD})
    _assert_throttled(response, window=3600)
    assert (await login(client, email)).status_code == 401  # nothing was created
    async with browser(client, ip="198.51.100.77") as elsewhere:
        assert (await signup(elsewhere, email)).status_code == 201
    clock.advance(3601)
    assert (await signup(client, unique_email())).status_code == 201
