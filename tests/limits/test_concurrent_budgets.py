"""Every attempt budget holds under concurrent requests: an attempt is counted (reserved) before its
check runs, so N concurrent guesses against a budget of B get at most B checks; the rest are 429.

Issue 11, hole 1: on the code before the fix, 90 concurrent wrong passwords for one account got 76
checks against a budget of 30, and 200 concurrent wrong TOTP codes on one pending sign-in got 47
against a budget of 10.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from tests.conftest import STRONG_PASSWORD, unique_email
from tests.limits.conftest import BACKENDS, LIMITS, Agent, Limited, serve_limited

WRONG = "definitely not the password"


@pytest.fixture(scope="module", params=[*BACKENDS, "postgres"])
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    """The budgets on every backend their counters live on: SQLite (its fast runner), Redis, and
    PostgreSQL alone (its counters counted in one statement on the asyncpg pool)."""
    yield from serve_limited(request, tmp_path_factory)


PENDING_COOKIE = "__Host-threshold_pending"
_hosts = itertools.count(1)


def fresh_ip() -> str:
    n = next(_hosts)
    return f"198.18.{(n >> 8) & 255}.{n & 255}"


async def totp_account(http: httpx.AsyncClient, limited: Limited) -> tuple[str, str]:
    """A signed-up account with a confirmed authenticator app: (email, secret)."""
    agent = Agent(http, limited.server, ip=fresh_ip())
    email = unique_email("budget")
    assert (await agent.signup(email)).status_code == 201
    setup = await agent.request("POST", "/api/v1/mfa/totp/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = await agent.request("POST", "/api/v1/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()})
    assert confirm.status_code == 200, confirm.text
    return email, secret


def tally(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


async def test_concurrent_wrong_passwords_get_at_most_the_account_budget(limited: Limited) -> None:
    budget = int(str(LIMITS["RATE_LIMIT__LOGIN_PER_ACCOUNT"]))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        owner = Agent(http, limited.server, ip=f"192.0.2.{next(_hosts) % 250 + 1}")  # not the attackers' /24s
        email = unique_email("stuffed")
        assert (await owner.signup(email)).status_code == 201
        attackers = [Agent(http, limited.server, ip=fresh_ip()) for _ in range(90)]
        for agent in attackers:
            await agent.csrf()
        responses = await asyncio.gather(
            *(a.request("POST", "/api/v1/login", {"email": email, "password": WRONG}) for a in attackers)
        )
    counts = tally(list(responses))
    assert set(counts) <= {401, 429}, counts
    assert counts[401] <= budget, f"{counts[401]} wrong passwords were checked against a budget of {budget}"
    assert counts[429] >= 90 - budget


async def test_concurrent_wrong_totp_codes_get_at_most_the_code_budget(limited: Limited) -> None:
    budget = int(str(LIMITS["MFA__CODE_ATTEMPTS"]))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        email, secret = await totp_account(http, limited)
        browser = Agent(http, limited.server, ip=fresh_ip())
        first = await browser.login(email)
        assert first.status_code == 200 and first.json()["status"] == "mfa_required", first.text
        assert PENDING_COOKIE in browser.cookies
        right = pyotp.TOTP(secret).now()
        wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 201)]
        responses = await asyncio.gather(
            *(
                browser.request("POST", "/api/v1/login/mfa", {"method": "totp", "code": code}, keep=False)
                for code in wrong
            )
        )
        counts = tally(list(responses))
        assert set(counts) <= {400, 429}, counts
        assert counts[400] <= budget, f"{counts[400]} wrong codes were checked against a budget of {budget}"
        # The budget is spent: even the right code now waits for the window.
        after = await browser.request("POST", "/api/v1/login/mfa", {"method": "totp", "code": right})
        assert after.status_code == 429, after.text


async def test_concurrent_wrong_step_up_passwords_get_at_most_the_budget(limited: Limited) -> None:
    budget = int(str(LIMITS["MFA__CODE_ATTEMPTS"]))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        owner = Agent(http, limited.server, ip=fresh_ip())
        assert (await owner.signup(unique_email("stepup"))).status_code == 201
        responses = await asyncio.gather(
            *(
                owner.request(
                    "POST", "/api/v1/reauthenticate", {"method": "password", "password": WRONG}, keep=False
                )
                for _ in range(60)
            )
        )
    counts = tally(list(responses))
    assert set(counts) <= {400, 429}, counts
    assert counts[400] <= budget, f"{counts[400]} wrong step-up passwords were checked against {budget}"


async def test_a_right_password_is_not_refused_for_the_successes_before_it(limited: Limited) -> None:
    """Reserving counts every attempt up front; a success gives its reservation back, so an account that
    signs in often (or a shared office address) never throttles itself."""
    async with httpx.AsyncClient(timeout=60) as http:
        agent = Agent(http, limited.server, ip=fresh_ip())
        email = unique_email("often")
        assert (await agent.signup(email)).status_code == 201
        for _ in range(int(str(LIMITS["RATE_LIMIT__LOGIN_PER_ACCOUNT"])) + 5):
            response = await Agent(http, limited.server, ip=agent.ip).login(email, STRONG_PASSWORD)
            assert response.status_code == 200, response.text


async def test_concurrent_right_passwords_all_sign_in_and_give_their_attempts_back(limited: Limited) -> None:
    """Right passwords into one account from three addresses at once, each completed sign-in giving its
    attempt back and clearing the consecutive counts in one write (on PostgreSQL one statement whose
    row locks every sign-in takes in one order): every one signs in (no deadlock, no 5xx), and then the
    account's whole budget is still there for the wrong passwords that follow, and not one more."""
    budget = int(str(LIMITS["RATE_LIMIT__LOGIN_PER_ACCOUNT"]))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        owner = Agent(http, limited.server, ip=f"192.0.2.{next(_hosts) % 250 + 1}")
        email = unique_email("busy")
        assert (await owner.signup(email)).status_code == 201
        addresses = [
            owner.ip,
            *(f"100.64.{next(_hosts) % 250}.1" for _ in range(2)),
        ]  # not the attacker's /24
        browsers = [Agent(http, limited.server, ip=addresses[n % 3]) for n in range(budget - 6)]
        for agent in browsers:
            await agent.csrf()
        signed_in = await asyncio.gather(
            *(
                a.request("POST", "/api/v1/login", {"email": email, "password": STRONG_PASSWORD})
                for a in browsers
            )
        )
        assert tally(list(signed_in)) == {200: len(browsers)}, [
            r.text for r in signed_in if r.status_code != 200
        ]

        attacker = fresh_ip()  # a network the account has never signed in from: the account budget applies
        wrong = [Agent(http, limited.server, ip=attacker) for _ in range(budget)]
        for agent in wrong:
            await agent.csrf()
        checked = await asyncio.gather(
            *(a.request("POST", "/api/v1/login", {"email": email, "password": WRONG}) for a in wrong)
        )
        assert tally(list(checked)) == {401: budget}, tally(list(checked))
        over = Agent(http, limited.server, ip=attacker)
        assert (await over.login(email, WRONG)).status_code == 429


@pytest.mark.parametrize("family", ["ipv6"])
async def test_addresses_of_one_ipv6_slash64_share_one_per_address_budget(
    limited: Limited, family: str
) -> None:
    """Issue 11, hole 2: 120 wrong sign-ins from addresses of one /64 all went through where one IPv4
    address gets 100 (login_per_ip)."""
    per_ip = int(str(LIMITS["RATE_LIMIT__LOGIN_PER_IP"]))
    n = next(_hosts)
    prefix = f"2001:db8:{n:x}:{n:x}"
    async with httpx.AsyncClient(timeout=60) as http:
        statuses: list[int] = []
        for i in range(per_ip + 20):
            agent = Agent(http, limited.server, ip=f"{prefix}:{i:x}:{i:x}:{i:x}:1")
            response = await agent.login(unique_email("spray"), WRONG)  # a different account each time
            statuses.append(response.status_code)
        counts = Counter(statuses)
        assert counts[401] == per_ip, counts
        assert counts[429] == 20, counts
        # A neighbour /64 is another client.
        other = Agent(http, limited.server, ip=f"2001:db8:{n:x}:{n + 1:x}::1")
        assert (await other.login(unique_email("spray"), WRONG)).status_code == 401


async def test_concurrent_data_exports_get_exactly_the_daily_budget(limited: Limited) -> None:
    """A stolen session cannot turn the account's export into a feed: of 20 downloads at once, the
    day's budget is served and the rest are 429 (counted before the document is read)."""
    budget = int(str(LIMITS["RATE_LIMIT__EXPORT_PER_DAY"]))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        owner = Agent(http, limited.server, ip=fresh_ip())
        assert (await owner.signup(unique_email("export"))).status_code == 201
        responses = await asyncio.gather(
            *(owner.request("GET", "/api/v1/account/export", keep=False) for _ in range(20))
        )
    counts = tally(list(responses))
    assert counts == Counter({200: budget, 429: 20 - budget}), counts
    assert all(int(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 429)
