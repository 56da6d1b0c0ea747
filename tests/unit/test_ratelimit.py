"""LoginThrottle: attempts are reserved (counted) before they are checked, refused without being counted
once a budget is spent, and given back on success. Per-address, per-account-and-address and per-account
limits always end with their window; the consecutive-failure cap only ends with a success."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from threshold.core.errors import ConsecutiveFailuresCapped, RateLimited
from threshold.core.ratelimit import SIGNUP_WINDOW, LoginThrottle, Reservation, network_of
from threshold.settings import MfaSettings, RateLimitSettings

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
CAPPED = RateLimitSettings(
    window=WINDOW,
    login_per_account=99,
    login_per_account_ip=99,
    login_per_ip=1000,
    consecutive_failures=5,
    known_network_days=90,
)
"""Window budgets far away, so that only the consecutive-failure cap (5) can refuse."""
MFA = MfaSettings(code_attempts=4, code_window=WINDOW)
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
    return LoginThrottle(InMemoryRateLimitStore(), users, clock, SETTINGS, MFA)


@pytest.fixture
def capped(users: InMemoryUserRepo, clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(InMemoryRateLimitStore(), users, clock, CAPPED, MFA)


async def attempt(
    throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str | None = USER
) -> Reservation:
    """Reserve one password attempt; unless it is then reported as a success, it stays counted."""
    return await throttle.reserve_login(email_normalized=email, ip=ip, user_id=user_id)


async def fail(
    throttle: LoginThrottle, ip: str, email: str = EMAIL, times: int = 1, user_id: str | None = USER
) -> None:
    """Failed attempts: reserved and never given back."""
    for _ in range(times):
        await attempt(throttle, ip, email, user_id)


async def succeed(throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str = USER) -> None:
    """A right password: the attempt is reserved, then reported as a success."""
    reservation = await attempt(throttle, ip, email, user_id)
    await throttle.login_succeeded(reservation, ip=ip, user_id=user_id)


async def limited(throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str | None = USER) -> int:
    """The retry_after of a refused attempt; fails the test if the attempt is allowed."""
    with pytest.raises(RateLimited) as caught:
        await attempt(throttle, ip, email, user_id)
    assert caught.value.code == "rate_limited"
    assert not isinstance(caught.value, ConsecutiveFailuresCapped)
    return caught.value.retry_after


async def allowed(throttle: LoginThrottle, ip: str, email: str = EMAIL, user_id: str | None = USER) -> None:
    """An attempt that is not refused (it stays counted, as a failure would)."""
    await attempt(throttle, ip, email, user_id)


async def test_account_and_address_limit(throttle: LoginThrottle) -> None:
    await fail(throttle, "203.0.113.9", times=3)
    retry_after = await limited(throttle, "203.0.113.9")
    assert 0 < retry_after <= WINDOW
    await allowed(throttle, "198.51.100.4")  # same account elsewhere: only 3 of 5 account failures
    await allowed(throttle, "203.0.113.9", email="bob@example.com", user_id="user-bob")


async def test_address_limit_across_many_accounts(throttle: LoginThrottle) -> None:
    for i in range(8):
        await fail(throttle, "203.0.113.9", email=f"victim{i}@example.com", user_id=f"user-victim{i}")
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
    await succeed(throttle, "198.51.100.7")
    clock.advance(60)
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await allowed(throttle, "198.51.100.99")  # the owner's usual /24, another host in it
    await limited(throttle, "203.0.113.5")  # an unfamiliar network is still refused


async def test_familiar_network_does_not_bypass_the_per_address_limits(throttle: LoginThrottle) -> None:
    await succeed(throttle, "198.51.100.7")
    await fail(throttle, "198.51.100.7", times=3)
    await limited(throttle, "198.51.100.7")


async def test_a_sign_up_makes_the_network_familiar(throttle: LoginThrottle) -> None:
    await throttle.note_network(user_id=USER, ip="198.51.100.7")
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await allowed(throttle, "198.51.100.8")
    await limited(throttle, "203.0.113.5")


async def test_familiarity_fades(throttle: LoginThrottle, clock: FakeClock) -> None:
    await succeed(throttle, "198.51.100.7")
    clock.advance(91 * 86400)
    clock.advance(-(clock.now() % WINDOW))
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await limited(throttle, "198.51.100.99")


async def test_unknown_account_is_never_familiar(
    throttle: LoginThrottle, users: InMemoryUserRepo, clock: FakeClock
) -> None:
    await users.record_network(USER, network_of("198.51.100.7"), clock.now())
    for i in range(5):
        await fail(throttle, f"192.0.2.{i}")
    await limited(throttle, "198.51.100.7", user_id=None)
    await allowed(throttle, "198.51.100.7")  # the same network is familiar to the account itself


async def test_success_clears_the_account_and_address_counter(throttle: LoginThrottle) -> None:
    await fail(throttle, "203.0.113.9", times=2)
    await succeed(throttle, "203.0.113.9")
    await fail(throttle, "203.0.113.9", times=2)
    await allowed(throttle, "203.0.113.9")  # the third failure since the success
    await limited(throttle, "203.0.113.9")


# --- reservations ---------------------------------------------------------------------------------


async def test_successes_give_their_reservation_back(throttle: LoginThrottle) -> None:
    """Far more successful sign-ins from one address than any budget allows never throttle anyone."""
    for _ in range(3):
        for i in range(10):
            await succeed(throttle, "203.0.113.9", email=f"user{i}@example.com", user_id=f"user-{i}")
    for _ in range(20):
        await succeed(throttle, "203.0.113.9")
    # ...and left every budget whole: the failures are counted from zero.
    await fail(throttle, "203.0.113.9", times=3)
    await limited(throttle, "203.0.113.9")
    for i in range(5):
        await fail(throttle, "203.0.113.9", email=f"victim{i}@example.com", user_id=None)
    await limited(throttle, "203.0.113.9", email="fresh@example.com", user_id=None)


async def test_a_refused_attempt_is_not_counted(throttle: LoginThrottle) -> None:
    # Refused by the account-and-address limit (after the address counter was raised): 3 of 8 used.
    await fail(throttle, "203.0.113.9", times=3)
    for _ in range(20):
        await limited(throttle, "203.0.113.9")
    for i in range(5):
        await fail(throttle, "203.0.113.9", email=f"victim{i}@example.com", user_id=None)
    await limited(throttle, "203.0.113.9", email="fresh@example.com", user_id=None)

    # Refused by the account limit, the last of three counters raised: 5 of 5 account failures spent.
    await fail(throttle, "192.0.2.1", times=2)
    for _ in range(20):
        await limited(throttle, "198.51.100.77")
    for i in range(8):  # the address counter of .77 was given back too
        await fail(throttle, "198.51.100.77", email=f"other{i}@example.com", user_id=None)
    await limited(throttle, "198.51.100.77", email="fresh@example.com", user_id=None)


async def test_codes_are_reserved_and_given_back(throttle: LoginThrottle) -> None:
    for _ in range(3 * MFA.code_attempts):
        await throttle.code_succeeded(await throttle.reserve_code(USER))
    for _ in range(MFA.code_attempts):
        await throttle.reserve_code(USER)  # wrong codes: they stay counted
    with pytest.raises(RateLimited) as caught:
        await throttle.reserve_code(USER)
    assert not isinstance(caught.value, ConsecutiveFailuresCapped)
    await throttle.reserve_code("user-bob")  # per account


# --- consecutive failures -------------------------------------------------------------------------


async def test_consecutive_failures_are_capped_across_windows(
    capped: LoginThrottle, clock: FakeClock
) -> None:
    await succeed(capped, "198.51.100.7")  # the owner's usual network
    for i in range(5):
        await fail(capped, f"192.0.2.{i}")
        clock.advance(WINDOW)  # every window budget starts again; the consecutive count does not
    for ip in ("198.51.100.7", "198.51.100.99", "203.0.113.5"):  # familiar or not
        with pytest.raises(ConsecutiveFailuresCapped) as caught:
            await attempt(capped, ip)
        assert isinstance(caught.value, RateLimited)
        assert caught.value.code == "rate_limited"
        assert caught.value.retry_after == ConsecutiveFailuresCapped.CAP_RETRY_AFTER
    # Codes have a count of their own: the owner's emailed link plus authenticator app still works.
    await capped.code_succeeded(await capped.reserve_code(USER))
    clock.advance(86400)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "198.51.100.7")
    await allowed(capped, "198.51.100.7", email="bob@example.com", user_id="user-bob")  # per account


async def test_an_unknown_address_reaches_the_cap_like_a_known_one(
    capped: LoginThrottle, clock: FakeClock
) -> None:
    """The cap is counted per address whether or not it has an account, so its 429 reveals nothing."""
    for i in range(5):
        await fail(capped, f"192.0.2.{i}", email="nobody@example.com", user_id=None)
        clock.advance(WINDOW)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "203.0.113.5", email="nobody@example.com", user_id=None)


async def test_only_a_success_clears_the_consecutive_count(capped: LoginThrottle) -> None:
    await fail(capped, "203.0.113.9", times=5)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "203.0.113.9")
    await capped.signed_in(user_id=USER, email_normalized=EMAIL)  # a passkey, an emailed link or a reset
    await fail(capped, "203.0.113.9", times=4)
    await succeed(capped, "203.0.113.9")  # a right password alone does not (a second factor may be owed)
    await fail(capped, "203.0.113.9", times=1)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "203.0.113.9")
    await capped.signed_in(user_id=USER, email_normalized=EMAIL)  # the completed sign-in does
    await fail(capped, "203.0.113.9", times=5)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "203.0.113.9")


async def test_failed_codes_have_a_cap_of_their_own(capped: LoginThrottle, clock: FakeClock) -> None:
    async def wrong_codes(times: int) -> None:
        for _ in range(times):
            await capped.reserve_code(USER)
            clock.advance(MFA.code_window)  # past the window budget; the consecutive count remains

    await wrong_codes(4)
    await capped.code_succeeded(await capped.reserve_code(USER))  # a right code clears the codes' count
    await wrong_codes(5)
    with pytest.raises(ConsecutiveFailuresCapped):
        await capped.reserve_code(USER)
    await fail(capped, "203.0.113.9", times=2)  # the passwords' count is another one
    await capped.signed_in(user_id=USER, email_normalized=EMAIL)  # a completed sign-in clears both
    await capped.code_succeeded(await capped.reserve_code(USER))


# --- client addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.9", "203.0.113.9/32"),
        ("::ffff:203.0.113.9", "203.0.113.9/32"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("unknown", "unknown"),
    ],
)
def test_client_key_by_default(throttle: LoginThrottle, ip: str, key: str) -> None:
    assert throttle.client_key(ip) == key


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.9", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/56"),
        ("2001:db8:1:ff::1", "2001:db8:1::/56"),
    ],
)
def test_client_key_prefixes_are_configurable(
    users: InMemoryUserRepo, clock: FakeClock, ip: str, key: str
) -> None:
    settings = RateLimitSettings(ipv4_prefix=24, ipv6_prefix=56)
    assert LoginThrottle(InMemoryRateLimitStore(), users, clock, settings).client_key(ip) == key


async def test_one_ipv6_host_cannot_rotate_through_its_64(throttle: LoginThrottle) -> None:
    for i in range(3):
        await fail(throttle, f"2001:db8:1:2::{i + 1:x}")
    await limited(throttle, "2001:db8:1:2:ffff::9")  # account and address: the /64 is one address
    for i in range(5):
        await fail(throttle, f"2001:db8:1:2::{i + 100:x}", email=f"victim{i}@example.com", user_id=None)
    await limited(throttle, "2001:db8:1:2::beef", email="fresh@example.com", user_id=None)
    await allowed(throttle, "2001:db8:1:3::1", email="fresh@example.com", user_id=None)  # the next /64


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


# --- a password sign-in's settlement --------------------------------------------------------------


class CountingStore(InMemoryRateLimitStore):
    def __init__(self) -> None:
        super().__init__()
        self.settles = 0
        self.written: list[tuple[list[tuple[str, int]], list[tuple[str, int]]]] = []

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        self.settles += 1
        self.written.append((list(refund), list(reset)))
        await super().settle(refund=refund, reset=reset, now=now)


async def test_a_completed_sign_in_writes_the_give_back_with_its_clearing(
    users: InMemoryUserRepo, clock: FakeClock
) -> None:
    """One round trip instead of two, and the same counters as the two writes (parity)."""
    stores = CountingStore(), CountingStore()
    apart, together = (LoginThrottle(store, users, clock, SETTINGS, MFA) for store in stores)
    for throttle in (apart, together):
        await fail(throttle, "203.0.113.9", times=2)
        await fail(throttle, "203.0.113.9", email="other@example.com", user_id="user-other")
        await throttle.reserve_code(USER)
    reservations = [await attempt(t, "203.0.113.9") for t in (apart, together)]
    await apart.login_succeeded(reservations[0], ip="203.0.113.9", user_id=USER)
    await apart.signed_in(user_id=USER, email_normalized=EMAIL)
    settlement = together.password_right(reservations[1])
    assert stores[1].settles == 0  # nothing written yet
    await together.signed_in(user_id=USER, email_normalized=EMAIL, settling=settlement)
    await together.settle(settlement)  # what the sign-in's `finally` does: already written, nothing
    assert (stores[0].settles, stores[1].settles) == (2, 1)
    assert stores[0].counts == stores[1].counts
    assert stores[1].counts  # the other account's failures and the address's are still counted


async def test_a_counter_cleared_is_not_also_given_back(users: InMemoryUserRepo, clock: FakeClock) -> None:
    """A completed sign-in clears the consecutive-failure count its attempt also counted: the store is
    asked to clear it, not to give it back first and then clear it (the same counters either way;
    on PostgreSQL a settlement whose refunds and clearings are apart is one statement, else a
    transaction of one statement per counter)."""
    store = CountingStore()
    throttle = LoginThrottle(store, users, clock, SETTINGS, MFA)
    await fail(throttle, "203.0.113.9", times=2)
    settlement = throttle.password_right(await attempt(throttle, "203.0.113.9"))
    await throttle.signed_in(user_id=USER, email_normalized=EMAIL, settling=settlement)
    [(refund, reset)] = store.written
    assert refund and reset
    assert not set(refund) & set(reset), (refund, reset)
    assert not any(key.startswith("fail:") for key, _ in store.counts)  # both consecutive counts cleared


async def test_a_give_back_is_written_once(throttle: LoginThrottle) -> None:
    """Written twice, a give-back would hand back another attempt's count too."""
    for i in range(7):  # 7 of the address's 8
        await fail(throttle, "203.0.113.9", email=f"victim{i}@example.com", user_id=None)
    settlement = throttle.password_right(await attempt(throttle, "203.0.113.9"))
    await throttle.settle(settlement)
    await throttle.settle(settlement)
    await throttle.signed_in(user_id=USER, email_normalized=EMAIL, settling=settlement)
    await allowed(throttle, "203.0.113.9", email="fresh@example.com", user_id=None)  # the 8th
    await limited(throttle, "203.0.113.9", email="fresh@example.com", user_id=None)


async def test_a_second_factor_owed_leaves_the_consecutive_count(capped: LoginThrottle) -> None:
    """The give-back written on its own (a pending sign-in) refunds the attempt, clears nothing."""
    await fail(capped, "203.0.113.9", times=4)
    settlement = capped.password_right(await attempt(capped, "203.0.113.9"))
    await capped.settle(settlement)
    await fail(capped, "203.0.113.9", times=1)
    with pytest.raises(ConsecutiveFailuresCapped):
        await attempt(capped, "203.0.113.9")
