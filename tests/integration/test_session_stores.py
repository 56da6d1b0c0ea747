"""What only one kind of SessionStore does: Redis keys that expire and stay small, SQL purging in batches.

The contract every implementation keeps is in contract/test_session_store.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.records import session as _record
from tests.integration.records import user
from threshold.adapters.redis._session_format import session_key_part, user_key_part
from threshold.adapters.redis.stores import RedisSessionStore
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.repos import SqlSessionStore, SqlUserRepo
from threshold.core.models import Aal, Amr
from threshold.core.secrets import new_id, new_token

# --- Redis specifics ----------------------------------------------------------------------------


@pytest.fixture
def redis_store(redis_client: aioredis.Redis, redis_prefix: str) -> RedisSessionStore:
    return RedisSessionStore(redis_client, redis_prefix)


async def test_redis_keys_expire_with_the_session(
    redis_store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    record = _record("u" + new_id(), now=now, idle_expires_at=now + 100, absolute_expires_at=now + 500)
    await redis_store.create(record)
    key = redis_prefix.encode() + b"s:" + session_key_part(record.digest)

    def remaining_ms(at: float) -> float:
        return at * 1000 - time.time() * 1000

    pttl = await redis_client.pttl(key)
    assert abs(pttl - remaining_ms(record.expires_at)) < 1500  # the idle expiry comes first
    user_pttl = await redis_client.pttl(redis_prefix.encode() + b"us:" + user_key_part(record.user_id))
    assert abs(user_pttl - remaining_ms(record.absolute_expires_at)) < 1500

    # Touching moves the expiry to the new idle deadline, never past the absolute one.
    await redis_store.touch(record.digest, last_seen_at=now + 1, idle_expires_at=now + 300)
    assert abs(await redis_client.pttl(key) - remaining_ms(now + 300)) < 1500
    await redis_store.touch(record.digest, last_seen_at=now + 2, idle_expires_at=now + 900)
    assert abs(await redis_client.pttl(key) - remaining_ms(record.absolute_expires_at)) < 1500


async def test_redis_session_is_gone_when_it_expires(
    redis_store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    record = _record("u" + new_id(), now=now, idle_expires_at=now + 0.4, absolute_expires_at=now + 600)
    await redis_store.create(record)
    assert await redis_store.get(record.digest) == record
    deadline = time.time() + 5
    while await redis_store.get(record.digest) is not None and time.time() < deadline:
        await asyncio.sleep(0.1)
    assert await redis_store.get(record.digest) is None
    assert await redis_store.list_for_user(record.user_id) == []


async def test_redis_never_stores_the_raw_token(
    redis_store: RedisSessionStore, redis_prefix: str, redis_url: str
) -> None:
    token = new_token()
    record = _record(new_id(), token)
    await redis_store.create(record)
    await redis_store.touch(record.digest, last_seen_at=time.time(), idle_expires_at=time.time() + 60)
    await redis_store.update_auth(record.digest, auth_time=time.time(), aal=Aal.AAL2, amr=[Amr.OTP])

    raw = token.encode()
    client = aioredis.from_url(redis_url)  # keys and values are bytes
    try:
        keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
        assert redis_prefix.encode() + b"s:" + session_key_part(record.digest) in keys
        for key in keys:
            assert raw not in key
            kind = await client.type(key)
            assert kind in (b"string", b"hash"), (key, kind)
            if kind == b"hash":
                values = [v for pair in (await client.hgetall(key)).items() for v in pair]
            else:
                values = [await client.get(key) or ""]
            assert values
            assert all(isinstance(value, bytes) and raw not in value for value in values)
    finally:
        await client.aclose()


# --- SQL specifics ------------------------------------------------------------------------------


async def test_sql_purge_expired_in_batches(sql_engine: AsyncEngine) -> None:
    store = SqlSessionStore(sql_engine)
    owner = user()
    await SqlUserRepo(sql_engine).add(owner, None)
    now = time.time()
    by_idle = [
        _record(owner.id, now=now, idle_expires_at=now - 1, absolute_expires_at=now + 100) for _ in range(4)
    ]
    by_absolute = [
        _record(owner.id, now=now, idle_expires_at=now - 5, absolute_expires_at=now) for _ in range(3)
    ]
    live = [_record(owner.id, now=now) for _ in range(3)]
    for r in [*by_idle, *by_absolute, *live]:
        await store.create(r)

    assert [await store.purge_expired(now=now, batch=3) for _ in range(4)] == [3, 3, 1, 0]

    left = await store.list_for_user(owner.id)
    assert sorted(r.digest for r in left) == sorted(r.digest for r in live)
    async with sql_engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(t.sessions))).scalar_one() == 3


async def test_redis_keeps_a_session_in_a_few_hundred_bytes(
    redis_store: RedisSessionStore, redis_prefix: str, redis_url: str
) -> None:
    """The compact layout: one short string per session, each device stored once, a listpack index."""
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    )
    user_id = new_id()
    now = time.time()
    records = [  # as issued: last seen and auth time are the creation time
        _record(
            user_id,
            now=now,
            created_at=now,
            last_seen_at=now,
            auth_time=now,
            ip="203.0.113.7",
            user_agent=agent,
            device_label="Chrome on Linux",
        )
        for _ in range(3)
    ]
    for record in records:
        await redis_store.create(record)
        assert await redis_store.get(record.digest) == record
    prefix = redis_prefix.encode()
    key = prefix + b"s:" + session_key_part(records[0].digest)
    client = aioredis.from_url(redis_url)
    try:
        assert await client.type(key) == b"string"
        # 76 bytes at most and the string's 4 bytes of header fit the 80-byte allocation
        assert len(await client.get(key) or b"") <= 76
        await redis_store.touch(records[0].digest, last_seen_at=now + 600.5, idle_expires_at=now + 4200.5)
        assert len(await client.get(key) or b"") <= 76
        devices = [key async for key in client.scan_iter(match=redis_prefix + "ua:*")]
        assert len(devices) == 1
        index = prefix + b"us:" + user_key_part(user_id)
        assert await client.object("encoding", index) == b"listpack"
        assert sorted(await client.hkeys(index)) == sorted(session_key_part(r.digest) for r in records)
    finally:
        await client.aclose()
    assert sorted(r.digest for r in await redis_store.list_for_user(user_id)) == sorted(
        r.digest for r in records
    )


async def _layout(client: aioredis.Redis, prefix: bytes, user_id: str) -> dict[bytes, tuple[bytes, int]]:
    """Every key of one user's sessions with its value (a hash's sorted fields) and whole seconds to live."""
    found: dict[bytes, tuple[bytes, int]] = {}
    index = prefix + b"us:" + user_key_part(user_id)
    parts = sorted(cast(list[bytes], await client.hkeys(index)))
    found[b"us:"] = (b",".join(parts), round(await client.pttl(index) / 1000))
    for part in parts:
        value = cast(bytes | None, await client.get(prefix + b"s:" + part)) or b""
        found[b"s:" + part] = (value, round(await client.pttl(prefix + b"s:" + part) / 1000))
    async for key in client.scan_iter(match=prefix + b"ua:*"):
        device = cast(bytes | None, await client.get(key)) or b""
        found[bytes(key)[len(prefix) :]] = (device, round(await client.pttl(key) / 1000))
    return found


async def test_a_bulk_import_writes_what_one_sign_in_writes(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    """create_many (bench/run.py's million sessions) and create run the same script: the same keys,
    values and expiries."""
    now = time.time()
    user_id = new_id()
    records = [
        _record(
            user_id,
            new_token(),
            now=now,
            created_at=now,
            last_seen_at=now,
            auth_time=now,
            idle_expires_at=now + 600 * (i + 1),
            absolute_expires_at=now + 3600 * (3 - i),
            user_agent="Mozilla/5.0 bulk",
            device_label="Firefox on Linux",
        )
        for i in range(3)
    ]
    layouts = []
    client = aioredis.from_url(redis_url)
    try:
        for bulk in (False, True):
            prefix = f"bulk{new_id()[:8]}:"
            store = RedisSessionStore(redis_client, prefix)
            if bulk:
                await store.create_many(records)
            else:
                for record in records:
                    await store.create(record)
            assert await store.list_for_user(user_id) == sorted(records, key=lambda r: r.digest)
            layouts.append(await _layout(client, prefix.encode(), user_id))
    finally:
        await client.aclose()
    assert layouts[0] == layouts[1]
    assert len(layouts[0]) == 5  # the index, three sessions, one device
    # The index and the device live as long as the longest session (created first here): a later,
    # shorter one never shortens them.
    ttls = {key[:3]: ttl for key, (_, ttl) in layouts[0].items()}
    assert abs(ttls[b"us:"] - 3 * 3600) <= 2 and abs(ttls[b"ua:"] - 3 * 3600) <= 2, ttls
