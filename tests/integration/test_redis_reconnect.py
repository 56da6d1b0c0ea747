"""A pooled Redis connection that Redis closed (a restart, a failover, an idle timeout, CLIENT KILL) costs
the next command nothing: the client sends it again on a fresh connection. Without that, the first
requests after Redis is back were answered 503 (tests/faults caught one in CI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from tests.integration.records import session as _record
from threshold.adapters.redis.stores import RedisRateLimitStore, RedisSessionStore
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.core.secrets import new_id


async def _kill_every_connection_of(client: aioredis.Redis, admin: aioredis.Redis) -> int:
    """Open a few pooled connections, then have Redis close each of them."""
    pool = client.connection_pool
    connections = [await pool.get_connection() for _ in range(4)]  # type: ignore[no-untyped-call]
    ids = []
    for connection in connections:
        await connection.disconnect()  # the previous round's, which Redis closed
        await connection.connect()
        await connection.send_command("CLIENT", "ID")
        ids.append(int(await connection.read_response()))
    for connection in connections:
        await pool.release(connection)
    for client_id in ids:
        await admin.client_kill_filter(_id=str(client_id))
    await asyncio.sleep(0.05)
    return len(ids)


async def test_commands_scripts_and_pipelines_go_on_after_redis_closed_the_pooled_connections(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis_connect(redis_url)
    admin = aioredis.from_url(redis_url)
    sessions, limits = RedisSessionStore(client, redis_prefix), RedisRateLimitStore(client, redis_prefix)
    record = _record(new_id())
    try:
        await sessions.create(record)
        steps: dict[str, Callable[[], Awaitable[object]]] = {
            "command": lambda: client.get(f"{redis_prefix}absent"),
            "script": lambda: sessions.get(record.digest),
            "count": lambda: limits.increment("k", window=60, now=time.time()),
            "pipeline": lambda: sessions.create_many([_record(new_id())]),
        }
        for name, step in steps.items():
            for _ in range(3):  # each of the four pooled connections that Redis closed
                assert await _kill_every_connection_of(client, admin) == 4
                try:
                    await step()
                except Exception as error:  # ConnectionError ("Connection closed by server") before the fix
                    raise AssertionError(f"{name} failed on a connection Redis had closed") from error
        assert await sessions.get(record.digest) == record
    finally:
        await client.aclose()
        await admin.aclose()
