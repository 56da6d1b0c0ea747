"""RateLimitStore: fixed windows, shared counters, atomic under concurrency (SQL and Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest
from sqlalchemy import ClauseElement

from tests.integration.contract.conftest import Storage
from threshold.adapters.sql.db import Columns, Query, SyncStatements, UnitAwareStatements
from threshold.adapters.sql.repos import SqlRateLimitStore, SqlUserRepo
from threshold.core.clock import SystemClock
from threshold.core.ports import RateLimitStore
from threshold.core.ratelimit import LoginThrottle
from threshold.core.secrets import new_id
from threshold.settings import RateLimitSettings

T = TypeVar("T")

WINDOW = 3600


def _next_window_start() -> int:
    """The start of the next window: real time (Redis expires keys at the window's end), never now."""
    return (int(time.time()) // WINDOW + 1) * WINDOW


async def test_increment_get_reset(rate_limits: RateLimitStore) -> None:
    key, other = f"login:{new_id()}", f"login:{new_id()}"
    start = _next_window_start()

    assert (await rate_limits.get(key, window=WINDOW, now=start + 10)).count == 0
    first = await rate_limits.increment(key, window=WINDOW, now=start + 10)
    assert first.count == 1
    assert first.retry_after == WINDOW - 10
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 20.5)).count == 2
    await rate_limits.increment(other, window=WINDOW, now=start + 20)

    got = await rate_limits.get(key, window=WINDOW, now=start + 30)
    assert got.count == 2
    assert got.retry_after == WINDOW - 30

    await rate_limits.settle(reset=[(key, WINDOW)], now=start + 40)
    assert (await rate_limits.get(key, window=WINDOW, now=start + 41)).count == 0
    assert (await rate_limits.get(other, window=WINDOW, now=start + 41)).count == 1
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 42)).count == 1


async def test_windows_roll_over(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    for _ in range(3):
        await rate_limits.increment(key, window=WINDOW, now=start + 5)

    later = await rate_limits.increment(key, window=WINDOW, now=start + WINDOW + 1)
    assert later.count == 1
    assert later.retry_after == WINDOW - 1
    assert (await rate_limits.get(key, window=WINDOW, now=start + WINDOW - 0.5)).count == 3
    assert (await rate_limits.get(key, window=WINDOW, now=start + WINDOW + 2)).count == 1
    assert (await rate_limits.get(key, window=WINDOW, now=start + 2 * WINDOW)).count == 0


async def test_retry_after_is_at_least_one_second(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    assert (await rate_limits.increment(key, window=WINDOW, now=start + WINDOW - 0.01)).retry_after == 1


async def test_concurrent_increments_each_count_once(rate_limits: RateLimitStore) -> None:
    key = f"race:{new_id()}"
    now = _next_window_start() + 1

    results = await asyncio.gather(*(rate_limits.increment(key, window=WINDOW, now=now) for _ in range(50)))

    assert sorted(r.count for r in results) == list(range(1, 51))
    assert (await rate_limits.get(key, window=WINDOW, now=now)).count == 50


async def test_refund_gives_back_one_attempt_of_the_current_window(rate_limits: RateLimitStore) -> None:
    key, other = f"login:{new_id()}", f"login:{new_id()}"
    start = _next_window_start()
    for _ in range(3):
        await rate_limits.increment(key, window=WINDOW, now=start + 1)
    await rate_limits.increment(other, window=WINDOW, now=start + 1)

    await rate_limits.settle(refund=[(key, WINDOW)], now=start + 2)

    assert (await rate_limits.get(key, window=WINDOW, now=start + 3)).count == 2
    assert (await rate_limits.get(other, window=WINDOW, now=start + 3)).count == 1
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 4)).count == 3


async def test_refund_never_goes_below_zero(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    await rate_limits.settle(refund=[(key, WINDOW)], now=start + 1)  # nothing counted yet
    assert (await rate_limits.get(key, window=WINDOW, now=start + 1)).count == 0

    await rate_limits.increment(key, window=WINDOW, now=start + 1)
    await asyncio.gather(*(rate_limits.settle(refund=[(key, WINDOW)], now=start + 2) for _ in range(5)))

    assert (await rate_limits.get(key, window=WINDOW, now=start + 3)).count == 0
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 4)).count == 1


async def test_refund_leaves_other_windows_alone(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    await rate_limits.increment(key, window=WINDOW, now=start + 1)
    await rate_limits.increment(key, window=WINDOW, now=start + WINDOW + 1)

    await rate_limits.settle(refund=[(key, WINDOW)], now=start + WINDOW + 2)

    assert (await rate_limits.get(key, window=WINDOW, now=start + 2)).count == 1
    assert (await rate_limits.get(key, window=WINDOW, now=start + WINDOW + 3)).count == 0


async def test_concurrent_increments_and_refunds_balance(rate_limits: RateLimitStore) -> None:
    """Each attempt reserved and then given back (a success) leaves the count where it was."""
    key = f"race:{new_id()}"
    now = _next_window_start() + 1
    await rate_limits.increment(key, window=WINDOW, now=now)

    async def attempt() -> None:
        await rate_limits.increment(key, window=WINDOW, now=now)
        await rate_limits.settle(refund=[(key, WINDOW)], now=now)

    await asyncio.gather(*(attempt() for _ in range(20)))

    assert (await rate_limits.get(key, window=WINDOW, now=now)).count == 1


async def test_counters_counted_and_settled_together(rate_limits: RateLimitStore) -> None:
    """A sign-in counts several budgets at once and settles them at once: the same counts as one by one."""
    a, b, c = (f"login:{new_id()}" for _ in range(3))
    start = _next_window_start()
    await rate_limits.increment(b, window=WINDOW, now=start + 1)
    counts = await rate_limits.increment_all([(a, WINDOW), (b, WINDOW), (c, 60)], now=start + 10)
    assert [count.count for count in counts] == [1, 2, 1]
    assert [count.retry_after for count in counts] == [WINDOW - 10, WINDOW - 10, 50]

    await rate_limits.settle(refund=[(a, WINDOW), (b, WINDOW)], reset=[(c, 60)], now=start + 20)
    assert (await rate_limits.get(a, window=WINDOW, now=start + 21)).count == 0
    assert (await rate_limits.get(b, window=WINDOW, now=start + 21)).count == 1
    assert (await rate_limits.get(c, window=60, now=start + 21)).count == 0
    await rate_limits.settle(refund=[(a, WINDOW)], now=start + 22)  # never below zero
    assert (await rate_limits.get(a, window=WINDOW, now=start + 23)).count == 0
    await rate_limits.settle(now=start + 24)  # nothing to do


async def test_counting_together_is_atomic_per_counter(rate_limits: RateLimitStore) -> None:
    key, other = f"login:{new_id()}", f"login:{new_id()}"
    start = _next_window_start()
    results = await asyncio.gather(
        *(rate_limits.increment_all([(key, WINDOW), (other, WINDOW)], now=start + 5) for _ in range(20))
    )
    assert sorted(r[0].count for r in results) == list(range(1, 21))
    assert sorted(r[1].count for r in results) == list(range(1, 21))


async def test_a_counter_named_twice_counts_and_gives_back_twice(rate_limits: RateLimitStore) -> None:
    # Not a call any limit makes today, but the port's contract: each entry is one attempt, in order.
    key, other = f"twice:{new_id()}", f"twice:{new_id()}"
    now = _next_window_start() + 1
    counted = await rate_limits.increment_all([(key, WINDOW), (other, WINDOW), (key, WINDOW)], now=now)
    assert [c.count for c in counted] == [1, 1, 2]
    await rate_limits.settle(refund=[(key, WINDOW), (key, WINDOW)], now=now)
    assert (await rate_limits.get(key, window=WINDOW, now=now)).count == 0
    assert (await rate_limits.get(other, window=WINDOW, now=now)).count == 1


async def test_concurrent_sign_ins_settle_in_one_piece(rate_limits: RateLimitStore) -> None:
    """Sign-ins from three addresses into one account, at once, each counting its four budgets (as
    `LoginThrottle` does, in its order) and settling them as a right password does (three given back,
    the account-and-address one cleared): no deadlock, no error, and every given-back budget is back
    where it began."""
    account, consecutive = f"login:a:{new_id()}", f"fail:a:{new_id()}"
    addresses = [f"login:ip:{new_id()}" for _ in range(3)]
    now = _next_window_start() + 1

    async def sign_in(n: int) -> None:
        ip = addresses[n % len(addresses)]
        pair = f"login:ai:{ip}"
        await rate_limits.increment_all(
            [(ip, WINDOW), (pair, WINDOW), (account, WINDOW), (consecutive, WINDOW)], now=now
        )
        await rate_limits.settle(
            refund=[(ip, WINDOW), (account, WINDOW), (consecutive, WINDOW)], reset=[(pair, WINDOW)], now=now
        )

    await asyncio.gather(*(sign_in(n) for n in range(30)))

    for key in (account, consecutive, *addresses):
        assert (await rate_limits.get(key, window=WINDOW, now=now)).count == 0, key


class _Counted(UnitAwareStatements):
    """The service's statements, each call counted (the database is the real one)."""

    def __init__(self, storage: Storage) -> None:
        assert storage.engine is not None and storage.pool is not None
        super().__init__(storage.engine, storage.pool)
        self.calls: list[str] = []

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        self.calls.append("execute")
        return await super().execute(statement, params)

    async def returning(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        self.calls.append("returning")
        return await super().returning(statement, params)

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T:
        self.calls.append("transaction")
        return await super().transaction(work)


@pytest.mark.parametrize("store_place", ["postgres-asyncpg"], indirect=True)
async def test_a_completed_sign_in_settles_in_one_statement_on_postgres(store_storage: Storage) -> None:
    """A right password's give-back with the completed sign-in's clearing (LoginThrottle.signed_in) is
    one statement on the service's asyncpg runner, not a transaction of one statement per counter: the
    counters it gives back and those it clears are apart (core.ratelimit.Budgets.write)."""
    assert store_storage.engine is not None
    statements = _Counted(store_storage)
    store = SqlRateLimitStore(store_storage.engine, statements=statements)
    throttle = LoginThrottle(store, SqlUserRepo(store_storage.engine), SystemClock(), RateLimitSettings())
    email, ip, user_id = f"{new_id()}@example.com", "203.0.113.9", new_id()
    failed = await throttle.reserve_login(email_normalized=email, ip=ip, user_id=user_id)  # a wrong password
    reservation = await throttle.reserve_login(email_normalized=email, ip=ip, user_id=user_id)
    counted = {limit.key: count for limit, count in reservation.counted}
    assert len(counted) == 4 and all(count == 2 for count in counted.values())

    statements.calls.clear()
    await throttle.signed_in(
        user_id=user_id, email_normalized=email, settling=throttle.password_right(reservation)
    )
    assert statements.calls == ["execute"]

    now = time.time()
    left = {}
    for limit, _ in failed.counted:
        left[limit.name] = (await store.get(limit.key, window=limit.window, now=now)).count
    # the failed attempt stays counted where this one is given back; cleared: the account-and-address
    # budget (a right password) and the consecutive failures (a completed sign-in)
    assert left == {"ip": 1, "account_ip": 0, "account": 1, "consecutive": 0}, left
