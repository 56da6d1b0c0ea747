"""SessionStore implementations: SQL on SQLite and PostgreSQL, and Redis. Same contract, every field."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import AddUser
from threshold.adapters.redis.stores import RedisSessionStore, _id, _short
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.repos import SqlSessionStore
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.ports import SessionStore
from threshold.core.secrets import digest, new_id, new_token


@pytest.fixture
def store(
    store_backend: str, store_engine: AsyncEngine | None, request: pytest.FixtureRequest
) -> SessionStore:
    if store_engine is not None:
        return SqlSessionStore(store_engine)
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    return RedisSessionStore(client, request.getfixturevalue("redis_prefix"))


def _record(
    user_id: str, token: str | None = None, *, now: float | None = None, **changes: object
) -> SessionRecord:
    now = time.time() if now is None else now
    record = SessionRecord(
        digest=digest(token or new_token()),
        public_id=new_id(),
        user_id=user_id,
        created_at=now - 0.123456789,
        last_seen_at=now + 0.1,
        idle_expires_at=now + 3600.25,
        absolute_expires_at=now + 7200.5,
        aal=Aal.AAL2,
        amr=(Amr.PASSWORD, Amr.OTP),
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 \u00e9\u2603",
        device_label="Firefox on Linux",
        auth_time=now - 0.5,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


async def test_create_get_round_trips_every_field(store: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    single = _record(
        user.id, aal=Aal.AAL1, amr=(Amr.PASSWORD,), ip="203.0.113.7", user_agent="", device_label=""
    )
    empty_amr = _record(user.id, amr=())

    for r in (record, single, empty_amr):
        await store.create(r)

    assert await store.get(record.digest) == record
    assert await store.get(single.digest) == single
    assert await store.get(empty_amr.digest) == empty_amr
    assert await store.get(digest(new_token())) is None


async def test_touch_updates_last_seen_and_idle_expiry(store: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    await store.create(record)

    await store.touch(
        record.digest, last_seen_at=record.last_seen_at + 61.5, idle_expires_at=record.idle_expires_at + 61.5
    )

    assert await store.get(record.digest) == replace(
        record, last_seen_at=record.last_seen_at + 61.5, idle_expires_at=record.idle_expires_at + 61.5
    )


async def test_delete(store: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record, kept = _record(user.id), _record(user.id)
    await store.create(record)
    await store.create(kept)

    assert await store.delete(record.digest) is True
    assert await store.get(record.digest) is None
    assert await store.delete(record.digest) is False
    assert await store.get(kept.digest) == kept
    assert [r.digest for r in await store.list_for_user(user.id)] == [kept.digest]


async def test_touch_after_delete_does_not_resurrect(store: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    await store.create(record)
    await store.delete(record.digest)

    await store.touch(record.digest, last_seen_at=time.time(), idle_expires_at=time.time() + 3600)

    assert await store.get(record.digest) is None
    assert await store.list_for_user(user.id) == []


async def test_list_for_user(store: SessionStore, add_user: AddUser) -> None:
    user, other = await add_user(), await add_user()
    mine = [_record(user.id) for _ in range(3)]
    theirs = _record(other.id)
    for r in [*mine, theirs]:
        await store.create(r)

    listed = await store.list_for_user(user.id)
    assert sorted(listed, key=lambda r: r.digest) == sorted(mine, key=lambda r: r.digest)
    assert list(await store.list_for_user(other.id)) == [theirs]
    assert await store.list_for_user(new_id()) == []


async def test_delete_for_user_except_current(store: SessionStore, add_user: AddUser) -> None:
    user, other = await add_user(), await add_user()
    current, a, b = _record(user.id), _record(user.id), _record(user.id)
    theirs = _record(other.id)
    for r in (current, a, b, theirs):
        await store.create(r)

    assert await store.delete_for_user(user.id, except_digest=current.digest) == 2

    assert await store.get(a.digest) is None
    assert await store.get(b.digest) is None
    assert await store.get(current.digest) == current
    assert await store.get(theirs.digest) == theirs
    assert list(await store.list_for_user(user.id)) == [current]

    assert await store.delete_for_user(user.id) == 1
    assert await store.get(current.digest) is None
    assert await store.list_for_user(user.id) == []
    assert await store.delete_for_user(user.id) == 0
    assert await store.get(theirs.digest) == theirs


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
    key = f"{redis_prefix}s:{_short(record.digest)}"

    def remaining_ms(at: float) -> float:
        return at * 1000 - time.time() * 1000

    pttl = await redis_client.pttl(key)
    assert abs(pttl - remaining_ms(record.expires_at)) < 1500  # the idle expiry comes first
    user_pttl = await redis_client.pttl(f"{redis_prefix}us:{_id(record.user_id)}")
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
    redis_store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    token = new_token()
    record = _record("u" + new_id(), token)
    await redis_store.create(record)
    await redis_store.touch(record.digest, last_seen_at=time.time(), idle_expires_at=time.time() + 60)

    keys = [key async for key in redis_client.scan_iter(match=redis_prefix + "*")]
    assert f"{redis_prefix}s:{_short(record.digest)}" in keys
    for key in keys:
        assert token not in key
        kind = await redis_client.type(key)
        assert kind in ("string", "hash"), (key, kind)
        if kind == "hash":
            values = [str(v) for pair in (await redis_client.hgetall(key)).items() for v in pair]
        else:
            values = [str(await redis_client.get(key))]
        assert values
        assert all(token not in value for value in values)


# --- SQL specifics ------------------------------------------------------------------------------


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)
async def test_sql_purge_expired_in_batches(store_engine: AsyncEngine, add_user: AddUser) -> None:
    store = SqlSessionStore(store_engine)
    user = await add_user()
    now = time.time()
    by_idle = [
        _record(user.id, now=now, idle_expires_at=now - 1, absolute_expires_at=now + 100) for _ in range(4)
    ]
    by_absolute = [
        _record(user.id, now=now, idle_expires_at=now - 5, absolute_expires_at=now) for _ in range(3)
    ]
    live = [_record(user.id, now=now) for _ in range(3)]
    for r in [*by_idle, *by_absolute, *live]:
        await store.create(r)

    assert [await store.purge_expired(now=now, batch=3) for _ in range(4)] == [3, 3, 1, 0]

    left = await store.list_for_user(user.id)
    assert sorted(r.digest for r in left) == sorted(r.digest for r in live)
    async with store_engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(t.sessions))).scalar_one() == 3


async def test_redis_keeps_a_session_in_a_few_hundred_bytes(
    redis_store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """The compact layout: one short string per session, each user agent stored once."""
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    )
    user_id = new_id()
    records = [
        replace(_record(user_id), user_agent=agent, device_label="Chrome on Linux | x") for _ in range(3)
    ]
    for record in records:
        await redis_store.create(record)
        assert await redis_store.get(record.digest) == record  # exact, with a '|' in the label
    key = f"{redis_prefix}s:{_short(records[0].digest)}"
    assert await redis_client.type(key) == "string"
    assert len(await redis_client.get(key)) < 200
    agents = [key async for key in redis_client.scan_iter(match=redis_prefix + "ua:*")]
    assert len(agents) == 1
    assert sorted(r.digest for r in await redis_store.list_for_user(user_id)) == sorted(
        r.digest for r in records
    )
