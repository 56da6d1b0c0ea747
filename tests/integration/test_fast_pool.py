"""The asyncpg pool of the PostgreSQL fast path (adapters.sql.pg_fast.FastPool): a free connection is
taken at once, and a request that finds every connection busy waits a bounded time, then gets a 503
(DependencyUnavailable) instead of hanging, and nothing is lost for the requests after it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.sql.expression import ClauseElement

from tests.integration.conftest import asyncpg_url
from threshold.adapters.sql import pg_fast
from threshold.adapters.sql.pg_fast import FastPool
from threshold.core.errors import DependencyUnavailable

pytestmark = pytest.mark.postgres

_ECHO: ClauseElement = select(literal_column("1").label("one"), bindparam("value").label("value"))


async def test_a_busy_pool_answers_unavailable_after_a_bounded_wait(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_fast, "ACQUIRE_TIMEOUT", 0.2)
    pool = FastPool(asyncpg_url(pg_url), max_size=2)
    try:
        row = await pool.first(_ECHO, {"value": "free"})
        assert row is not None and row["value"] == "free"
        held = asyncio.Semaphore(0)
        release = asyncio.Event()

        async def hold() -> None:
            async with pool.connection():
                held.release()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        for _ in holders:
            await held.acquire()  # both connections are checked out
        started = asyncio.get_running_loop().time()
        with pytest.raises(DependencyUnavailable):
            await pool.first(_ECHO, {"value": "busy"})
        assert 0.15 <= asyncio.get_running_loop().time() - started < 2
        waiting = asyncio.create_task(pool.first(_ECHO, {"value": "cancelled"}))
        await asyncio.sleep(0.05)
        waiting.cancel()  # a request that goes away while it waits for a connection
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.checkouts == 2  # the two holders: neither the timed-out nor the cancelled one is left
        release.set()
        await asyncio.gather(*holders)
        assert pool.checkouts == 0
        rows = await asyncio.gather(*(pool.first(_ECHO, {"value": str(n)}) for n in range(5)))
        assert [r["value"] for r in rows if r is not None] == [str(n) for n in range(5)]
        assert pool.checkouts == 0
    finally:
        await pool.close()
