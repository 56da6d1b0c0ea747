"""What only the SQL RateLimitStore does: purging expired windows in batches.

The contract every implementation keeps is in contract/test_rate_limit_store.py.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql.repos import SqlRateLimitStore
from threshold.core.secrets import new_id


async def test_sql_purge_expired(sql_engine: AsyncEngine) -> None:
    limits = SqlRateLimitStore(sql_engine)
    old, current = f"old:{new_id()}", f"cur:{new_id()}"
    start = (int(time.time()) // 3600 + 1) * 3600
    for i in range(5):
        await limits.increment(f"{old}:{i}", window=60, now=start - 3600)
    await limits.increment(current, window=60, now=start)

    assert await limits.purge_expired(now=start, batch=2) == 2
    assert await limits.purge_expired(now=start, batch=10) == 3
    assert await limits.purge_expired(now=start) == 0
    assert (await limits.get(current, window=60, now=start)).count == 1
