"""RateLimitStore implementations: fixed windows, shared counters, atomic under concurrency."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.redis.stores import RedisRateLimitStore
from threshold.adapters.sql.repos import SqlRateLimitStore
from threshold.core.ports import RateLimitStore
from threshold.core.secrets import new_id

WINDOW = 3600


@pytest.fixture
def limits(
    store_backend: str, store_engine: AsyncEngine | None, request: pytest.FixtureRequest
) -> RateLimitStore:
    if store_engine is not None:
        return SqlRateLimitStore(store_engine)
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    return RedisRateLimitStore(client, request.getfixturevalue("redis_prefix"))


def _next_window_start() -> int:
    """The start of the next window: real time (Redis expires keys at the window's end), never now."""
    return (int(time.time()) // WINDOW + 1) * WINDOW


async def test_increment_get_reset(limits: RateLimitStore) -> None:
    key, other = f"login:{new_id()}", f"login:{new_id()}"
    start = _next_window_start()

    assert (await limits.get(key, window=WINDOW, now=start + 10)).count == 0
    first = await limits.increment(key, window=WINDOW, now=start + 10)
    assert first.count == 1
    assert first.retry_after == WINDOW - 10
    assert (await limits.increment(key, window=WINDOW, now=start + 20.5)).count == 2
    await limits.increment(other, window=WINDOW, now=start + 20)

    got = await limits.get(key, window=WINDOW, now=start + 30)
    assert got.count == 2
    assert got.retry_after == WINDOW - 30

    await limits.reset(key, window=WINDOW, now=start + 40)
    assert (await limits.get(key, window=WINDOW, now=start + 41)).count == 0
    assert (await limits.get(other, window=WINDOW, now=start + 41)).count == 1
    assert (await limits.increment(key, window=WINDOW, now=start + 42)).count == 1


async def test_windows_roll_over(limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    for _ in range(3):
        await limits.increment(key, window=WINDOW, now=start + 5)

    later = await limits.increment(key, window=WINDOW, now=start + WINDOW + 1)
    assert later.count == 1
    assert later.retry_after == WINDOW - 1
    assert (await limits.get(key, window=WINDOW, now=start + WINDOW - 0.5)).count == 3
    assert (await limits.get(key, window=WINDOW, now=start + WINDOW + 2)).count == 1
    assert (await limits.get(key, window=WINDOW, now=start + 2 * WINDOW)).count == 0


async def test_retry_after_is_at_least_one_second(limits: RateLimitStore) -> None:
    key = f"login:{new_id()}"
    start = _next_window_start()
    assert (await limits.increment(key, window=WINDOW, now=start + WINDOW - 0.01)).retry_after == 1


async def test_concurrent_increments_each_count_once(limits: RateLimitStore) -> None:
    key = f"race:{new_id()}"
    now = _next_window_start() + 1

    results = await asyncio.gather(*(limits.increment(key, window=WINDOW, now=now) for _ in range(50)))

    assert sorted(r.count for r in results) == list(range(1, 51))
    assert (await limits.get(key, window=WINDOW, now=now)).count == 50


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)
async def test_sql_purge_expired(store_engine: AsyncEngine) -> None:
    limits = SqlRateLimitStore(store_engine)
    old, current = f"old:{new_id()}", f"cur:{new_id()}"
    start = _next_window_start()
    for i in range(5):
        await limits.increment(f"{old}:{i}", window=60, now=start - 3600)
    await limits.increment(current, window=60, now=start)

    assert await limits.purge_expired(now=start, batch=2) == 2
    assert await limits.purge_expired(now=start, batch=10) == 3
    assert await limits.purge_expired(now=start) == 0
    assert (await limits.get(current, window=60, now=start)).count == 1
