"""RateLimitStore: fixed windows, shared counters, atomic under concurrency (SQL and Redis)."""

from __future__ import annotations

import asyncio
import time

from threshold.core.ports import RateLimitStore
from threshold.core.secrets import new_id

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

    await rate_limits.reset(key, window=WINDOW, now=start + 40)
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

    await rate_limits.refund(key, window=WINDOW, now=start + 2)

    assert (await rate_limits.get(key, window=WINDOW, now=start + 3)).count == 2
    assert (await rate_limits.get(other, window=WINDOW, now=start + 3)).count == 1
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 4)).count == 3


async def test_refund_never_goes_below_zero(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    await rate_limits.refund(key, window=WINDOW, now=start + 1)  # nothing counted yet
    assert (await rate_limits.get(key, window=WINDOW, now=start + 1)).count == 0

    await rate_limits.increment(key, window=WINDOW, now=start + 1)
    await asyncio.gather(*(rate_limits.refund(key, window=WINDOW, now=start + 2) for _ in range(5)))

    assert (await rate_limits.get(key, window=WINDOW, now=start + 3)).count == 0
    assert (await rate_limits.increment(key, window=WINDOW, now=start + 4)).count == 1


async def test_refund_leaves_other_windows_alone(rate_limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    await rate_limits.increment(key, window=WINDOW, now=start + 1)
    await rate_limits.increment(key, window=WINDOW, now=start + WINDOW + 1)

    await rate_limits.refund(key, window=WINDOW, now=start + WINDOW + 2)

    assert (await rate_limits.get(key, window=WINDOW, now=start + 2)).count == 1
    assert (await rate_limits.get(key, window=WINDOW, now=start + WINDOW + 3)).count == 0


async def test_concurrent_increments_and_refunds_balance(rate_limits: RateLimitStore) -> None:
    """Each attempt reserved and then given back (a success) leaves the count where it was."""
    key = f"race:{new_id()}"
    now = _next_window_start() + 1
    await rate_limits.increment(key, window=WINDOW, now=now)

    async def attempt() -> None:
        await rate_limits.increment(key, window=WINDOW, now=now)
        await rate_limits.refund(key, window=WINDOW, now=now)

    await asyncio.gather(*(attempt() for _ in range(20)))

    assert (await rate_limits.get(key, window=WINDOW, now=now)).count == 1
