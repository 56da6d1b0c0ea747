"""Sign-in throttling is one budget for the whole deployment, not one per process.

Failures for one account spread over server A and server B reach the limit at the same total as on
one server; once reached, both servers answer 429 (problem+json `rate_limited`, Retry-After), even to
the right password. On PostgreSQL + Redis the counters are in Redis, on PostgreSQL alone in SQL.

The servers keep real time and their windows are fixed (aligned on multiples of the window length),
so a test that fills a budget and then checks that it holds starts clear of a window's end: one that
straddles it sees the budget renewed, as the Retry-After it was given promised.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.scaleout.conftest import LIMITS, Pair, new_address
from tests.support import Server

WRONG = "definitely not the password"
PROBLEM = "application/problem+json"
LONGEST_TEST = 20.0
"""Seconds a test here may take, at most, from its first counted attempt to its last check."""


@pytest.fixture(autouse=True)
def clear_of_window_end() -> Iterator[None]:
    """Wait for the next window when the current one ends sooner than a test here takes."""
    left = LIMITS["window"] - time.time() % LIMITS["window"]
    if left < LONGEST_TEST:
        time.sleep(left + 0.5)
    started = time.monotonic()
    yield
    assert time.monotonic() - started < LONGEST_TEST, "the test outgrew LONGEST_TEST; raise it"


def attempt(http: httpx.Client, server: Server, email: str, ip: str, password: str = WRONG) -> httpx.Response:
    """One sign-in from client address `ip` (as a trusted proxy in front of the server would tell it)."""
    return Browser(http).request(
        server,
        "POST",
        "/api/v1/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
    )


def assert_throttled(response: httpx.Response) -> int:
    """The documented 429: problem+json with code rate_limited and a Retry-After within the window."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["code"] == "rate_limited" and body["status"] == 429, body
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= LIMITS["window"]
    assert body["retry_after"] == retry_after
    assert not any(h.startswith(SESSION_COOKIE) for h in response.headers.get_list("set-cookie"))
    return retry_after


def failures_until_throttled(
    http: httpx.Client, servers: list[Server], email: str, ips: itertools.cycle[str] | list[str]
) -> int:
    """Wrong passwords sent round-robin over `servers` (and over client addresses `ips`) until one is
    throttled; returns how many were answered 401 first."""
    addresses = itertools.cycle(ips)
    for failures, server in enumerate(itertools.islice(itertools.cycle(servers), 30)):
        response = attempt(http, server, email, next(addresses))
        if response.status_code == 429:
            assert_throttled(response)
            return failures
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_credentials"
    raise AssertionError("never throttled")


def signed_up(http: httpx.Client, server: Server, ip: str) -> str:
    email = unique_email("limits")
    browser = Browser(http)
    browser.fetch_csrf(server)
    response = browser.request(
        server,
        "POST",
        "/api/v1/signup",
        json={"email": email, "password": STRONG_PASSWORD},
        headers={"X-Forwarded-For": ip},
    )
    assert response.status_code == 201, response.text
    return email


def test_account_and_address_failures_over_two_servers_meet_the_single_server_limit(
    pair: Pair, http: httpx.Client
) -> None:
    limit = LIMITS["login_per_account_ip"]
    home = new_address()
    alone, spread = signed_up(http, pair.a, home), signed_up(http, pair.b, home)
    alone_ip, spread_ip = new_address(), new_address()

    on_one = failures_until_throttled(http, [pair.a], alone, [alone_ip])
    on_two = failures_until_throttled(http, [pair.a, pair.b], spread, [spread_ip])

    assert on_one == on_two == limit
    for server in (pair.a, pair.b):  # both refuse that address for that account, right password or not
        assert_throttled(attempt(http, server, spread, spread_ip, STRONG_PASSWORD))
        assert_throttled(attempt(http, server, alone, alone_ip, STRONG_PASSWORD))
    # another address still signs in to the same account, on either server
    assert attempt(http, pair.b, spread, new_address(), STRONG_PASSWORD).status_code == 200
    assert attempt(http, pair.a, alone, new_address(), STRONG_PASSWORD).status_code == 200


def test_account_failures_from_many_addresses_over_two_servers_meet_the_limit(
    pair: Pair, http: httpx.Client
) -> None:
    """The per-account counter, each failure from a new network and alternately on A and B."""
    limit = LIMITS["login_per_account"]
    home = new_address()
    email = signed_up(http, pair.a, home)
    addresses = [new_address() for _ in range(limit + 1)]

    assert failures_until_throttled(http, [pair.b, pair.a], email, addresses) == limit

    for server in (pair.a, pair.b):
        assert_throttled(attempt(http, server, email, new_address(), STRONG_PASSWORD))
        # the owner's usual network (where the account signed up, on A) is not locked out, on B either
        response = attempt(http, server, email, home, STRONG_PASSWORD)
        assert response.status_code == 200, response.text


def test_address_failures_over_many_accounts_and_two_servers_meet_the_limit(
    pair: Pair, http: httpx.Client
) -> None:
    limit = LIMITS["login_per_ip"]
    sprayer = new_address()
    servers = itertools.cycle([pair.a, pair.b])
    for _ in range(limit):
        response = attempt(http, next(servers), unique_email("spray"), sprayer)
        assert response.status_code == 401, response.text
    for server in (pair.a, pair.b):
        assert_throttled(attempt(http, server, unique_email("spray"), sprayer))
    assert attempt(http, pair.b, unique_email("spray"), new_address()).status_code == 401
