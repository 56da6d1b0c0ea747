"""The PostgreSQL pool (threshold.adapters.sql.db): reads in autocommit hold no transaction open, writes
stay atomic, and a pooled connection that has sat idle is pinged before it is handed out, so one cut
meanwhile (a restart, a failover, a firewall) is replaced instead of failing the request; a connection
in use a moment ago is not pinged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import asyncpg_url
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import create_engine, reading, translate_errors
from threshold.core.errors import DependencyUnavailable

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(pg_url: str) -> str:
    return asyncpg_url(pg_url)


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, pool_size=2, idle_ping_after=0.3)
    yield engine
    await engine.dispose()


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def _state(url: str, pid: int) -> str:
    admin = await _admin(url)
    try:
        state: str = await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await admin.close()
    return state


async def _cut(url: str, pids: set[int]) -> None:
    admin = await _admin(url)
    try:
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM unnest($1::int[]) AS pid", list(pids)
        )
    finally:
        await admin.close()


async def _pid(engine: AsyncEngine) -> int:
    with translate_errors():
        async with reading(engine) as conn:
            pid: int = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def test_reads_hold_no_transaction_open_and_writes_are_transactions(
    engine: AsyncEngine, url: str
) -> None:
    async with reading(engine) as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert await _state(url, pid) == "idle"
    async with engine.begin() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert await _state(url, pid) == "idle in transaction"


async def test_a_failed_write_leaves_nothing(engine: AsyncEngine) -> None:
    key = "atomic-" + str(id(engine))

    async def half_a_write() -> None:
        async with engine.begin() as conn:
            await conn.execute(t.marks.insert().values(key=key, expires_at=2e9))
            raise RuntimeError("the second half fails")

    with pytest.raises(RuntimeError):
        await half_a_write()
    async with reading(engine) as conn:
        assert (await conn.execute(select(t.marks.c.key).where(t.marks.c.key == key))).first() is None


async def test_a_connection_cut_while_idle_is_replaced_before_use(engine: AsyncEngine, url: str) -> None:
    first = await _pid(engine)
    await _cut(url, {first})
    await asyncio.sleep(0.5)  # idle longer than idle_ping_after
    second = await _pid(engine)  # no DependencyUnavailable: the ping found it dead, the pool reconnected
    assert second != first


async def test_without_the_ping_the_same_cut_is_a_503_not_a_500(url: str) -> None:
    """The control: a connection cut within the idle window is not pinged, and its request fails as a
    DependencyUnavailable (503 with Retry-After), after which the pool reconnects."""
    engine = create_engine(url, pool_size=2, idle_ping_after=60)
    try:
        first = await _pid(engine)
        await _cut(url, {first})
        await asyncio.sleep(0.5)
        with pytest.raises(DependencyUnavailable):
            await _pid(engine)
        assert await _pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = engine.sync_engine.dialect
    pings: list[Any] = []
    ping = dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    for _ in range(20):
        await _pid(engine)
    assert pings == []
    await asyncio.sleep(0.5)
    await _pid(engine)
    assert len(pings) == 1
