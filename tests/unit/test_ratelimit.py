"""LoginThrottle: per-address, per-account-and-address and per-account limits that always end."""

from __future__ import annotations

import pytest

from threshold.core.errors import RateLimited
from threshold.core.ratelimit import SIGNUP_WINDOW, LoginThrottle, network_of
from threshold.settings import RateLimitSettings

from .fakes import FakeClock, InMemoryRateLimitStore, InMemoryUserRepo

WINDOW = 900
SETTINGS = RateLimitSettings(
    window=WINDOW,
    login_per_account=5,
    login_per_account_ip=3,
    login_per_ip=8,
    signup_per_ip=2,
    known_network_days=90,
)
EMAIL = "alice@example.com"
USER = "user-alice"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0 - 1_700_000_000.0 % WINDOW)  # start of a window


@pytest.fixture
def users() -> InMemoryUserRepo:
    return InMemoryUserRepo()


@pytest.fixture
def throttle(users: InMemoryUserRepo, clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(InMemoryRateLimitStore(), users, clock, SETTINGS)


async def fail(throttle: LoginThrottle, ip: str, email: str = EMAIL, times: int = 1) -> None:
    for _ in range(times):
        await throttle.check_login(email_normalized=email, ip=ip, user_id=USER)
        await throttle.record_failure(email_normalized=email, ip=ip)


async def limited(throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str | None = USER) -> int:
    """The retry_after of a refused attempt; fails the test if the attempt is allowed."""
    with pytest.raises(RateLimited) as caught:
        await throttle.check_login(email_normalized=email, ip=ip, user_id=user_id)
    assert caught.value.code == "rate_limited"
    return caught.value.retry_after


async def allowed(throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str | None = USER) -> None:
    await throttle.check_login(email_normalized=email, ip=ip, user_id=user_id)


async def test_account_and_address_limit(throttle: LoginThrottle) -> None:
    await fail(throttle, "203.0.113.9", times=3)
    retry_after = await limited(throttle, "203.0.113.9")
    assert 0 < retry_after <= WINDOW
    await allowed(throttle, "198.51.100.4")  # same account elsewhere: only 3 of 5 account failures
    await allowed(throttle, "203.0.113.9", email="bob@example.com", user_id="user-bob")


async def test_address_limit_across_many_accounts(throttle: LoginThrottle) -> None:
    for i in range(8):
        await fail(throttle, "203.0.113.9", email=f"victim{i}@example.com")
    assert await limited(throttle, "203.0.113.9", email="fresh@example.com", user_id=None) > 0
    await allowed(throttle, "203.0.113.10", email="fresh@example.com", user_id=None)


async def test_account_limit_across_many_addresses(throttle: LoginThrottle) -> None:
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    assert await limited(throttle, "198.51.100.77") > 0
    assert await limited(throttle, "198.51.100.77", user_id=None) > 0  # unknown accounts too
    await allowed(throttle, "198.51.100.77", email="bob@example.com", user_id="user-bob")


async def test_limits_end_with_the_window(throttle: LoginThrottle, clock: FakeClock) -> None:
    await fail(throttle, "203.0.113.9", times=3)
    for i in range(2):  # the account counter reaches its limit of 5 too
        await fail(throttle, f"192.0.2.{i}")
    await limited(throttle, "198.51.100.77")
    clock.advance(100)
    retry_after = await limited(throttle, "203.0.113.9")
    assert retry_after == WINDOW - 100
    clock.advance(retry_after - 1)
    await limited(throttle, "203.0.113.9")
    clock.advance(1)
    await allowed(throttle, "203.0.113.9")
    await allowed(throttle, "198.51.100.77")


async def test_familiar_network_bypasses_the_account_limit(throttle: LoginThrottle, clock: FakeClock) -> None:
    await throttle.record_success(email_normalized=EMAIL, ip="198.51.100.7", user_id=USER)
    clock.advance(60)
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await allowed(throttle, "198.51.100.99")  # the owner's usual /24, another host in it
    await limited(throttle, "203.0.113.5")  # an unfamiliar network is still refused


async def test_familiar_network_does_not_bypass_the_per_address_limits(throttle: LoginThrottle) -> None:
    await throttle.record_success(email_normalized=EMAIL, ip="198.51.100.7", user_id=USER)
    await fail(throttle, "198.51.100.7", times=3)
    await limited(throttle, "198.51.100.7")


async def test_familiarity_fades(throttle: LoginThrottle, clock: FakeClock) -> None:
    await throttle.record_success(email_normalized=EMAIL, ip="198.51.100.7", user_id=USER)
    clock.advance(91 * 86400)
    clock.advance(-(clock.now() % WINDOW))
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await limited(throttle, "198.51.100.99")


async def test_unknown_account_is_never_familiar(throttle: LoginThrottle, users: InMemoryUserRepo) -> None:
    await users.record_network(USER, network_of("198.51.100.7"), 0)
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await limited(throttle, "198.51.100.7", user_id=None)


async def test_success_clears_the_account_and_address_counter(throttle: LoginThrottle) -> None:
    await fail(throttle, "203.0.113.9", times=2)
    await throttle.record_success(email_normalized=EMAIL, ip="203.0.113.9", user_id=USER)
    await fail(throttle, "203.0.113.9", times=2)
    await allowed(throttle, "203.0.113.9")


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("192.0.2.0", "192.0.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.77", "192.0.2.0/24"),
        ("unknown", "unknown"),
    ],
)
def test_network_of(ip: str, network: str) -> None:
    assert network_of(ip) == network


def test_ipv4_mapped_and_plain_ipv4_are_one_network() -> None:
    assert network_of("::ffff:198.51.100.7") == network_of("198.51.100.200")
    assert network_of("198.51.100.7") != network_of("198.51.101.7")


async def test_signup_limit_per_address(throttle: LoginThrottle, clock: FakeClock) -> None:
    await throttle.check_signup(ip="203.0.113.9")
    await throttle.check_signup(ip="203.0.113.9")
    with pytest.raises(RateLimited) as caught:
        await throttle.check_signup(ip="203.0.113.9")
    assert 0 < caught.value.retry_after <= SIGNUP_WINDOW
    await throttle.check_signup(ip="203.0.113.10")
    clock.advance(caught.value.retry_after)
    await throttle.check_signup(ip="203.0.113.9")
