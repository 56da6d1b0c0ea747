"""What only the Redis RateLimitStore does: each counter is a key that expires on its own, a second
after its window ends (the store's contract is in contract/test_rate_limit_store.py)."""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from threshold.adapters.redis.stores import RedisRateLimitStore


async def test_counters_expire_a_second_after_their_window(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    store = RedisRateLimitStore(redis_client, redis_prefix)
    now = time.time()
    windows = {"a": 60, "b": 3600, "c": 86400}
    counts = await store.increment_all([(key, window) for key, window in windows.items()], now=now)
    assert [c.count for c in counts] == [1, 1, 1]
    again = await store.increment_all([("a", 60), ("c", 86400)], now=now)
    assert [c.count for c in again] == [2, 2]
    for key, window in windows.items():
        start = int(now // window) * window
        expires_at = await redis_client.expiretime(f"{redis_prefix}rl:{key}:{start}")
        assert expires_at == start + window + 1, key
    assert [c.retry_after for c in counts] == [
        max(1, math.ceil(int(now // w) * w + w - now)) for w in windows.values()
    ]
