"""RedisSessionStore's binary layout against a real Redis: the scripts that rewrite a touch's and a
step-up's sections in place, and sessions the previous version wrote in text, which an upgraded
deployment reads, touches, steps up, lists and revokes where they are."""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.integration import legacy_redis_sessions as legacy
from tests.integration.records import session as _record
from tests.support import RedisServer
from threshold.adapters.redis._session_format import session_key_part, user_key_part
from threshold.adapters.redis.stores import RedisSessionStore
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.secrets import new_id


@pytest.fixture
def store(redis_client: aioredis.Redis, redis_prefix: str) -> RedisSessionStore:
    return RedisSessionStore(redis_client, redis_prefix)


def remaining_ms(at: float) -> float:
    return at * 1000 - time.time() * 1000


async def touch(store: RedisSessionStore, record: SessionRecord, seen: float, idle: float) -> SessionRecord:
    await store.touch(record.digest, last_seen_at=seen, idle_expires_at=idle)
    return replace(record, last_seen_at=seen, idle_expires_at=idle)


async def step_up(
    store: RedisSessionStore, record: SessionRecord, at: float, amr: tuple[Amr, ...]
) -> SessionRecord:
    aal = Aal.AAL2 if len(amr) > 1 else Aal.AAL1
    assert await store.update_auth(record.digest, auth_time=at, aal=aal, amr=amr) is True
    return replace(record, auth_time=at, aal=aal, amr=amr)


async def test_touches_and_step_ups_rewrite_their_sections_whatever_the_widths(
    store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """Each time in each of its three widths (the same as created, ticks, a double), and the methods'
    count changing, in every order: the rest of the value is kept byte for byte."""
    now = time.time()
    record = _record(
        new_id(), now=now, created_at=now, last_seen_at=now, auth_time=now, ip="203.0.113.9",
        org_id=new_id(), upstream_acr="urn:acr", upstream_amr=("pwd",),
    )  # fmt: skip
    await store.create(record)
    key = redis_prefix.encode() + b"s:" + session_key_part(record.digest)
    steps: list[Callable[[SessionRecord], Awaitable[SessionRecord]]] = [
        lambda r: touch(store, r, now + 30.5, now + 3000.25),  # last seen: elided -> ticks
        lambda r: step_up(store, r, now + 40.125, (Amr.PASSWORD, Amr.OTP, Amr.HARDWARE_KEY)),
        lambda r: touch(store, r, now, now + 4000.0),  # last seen back to created: ticks of 0
        lambda r: step_up(store, r, 1.5, ()),  # no methods, a far time
        lambda r: touch(store, r, now + 90.0, now + 500 * 86400.0),  # idle beyond 388 days: a double
        lambda r: step_up(store, r, now + 95.0, (Amr.EMAIL,)),
        lambda r: touch(store, r, now + 120.0, now + 3600.0),
    ]
    for step in steps:
        record = await step(record)
        assert await store.get(record.digest) == record
        assert abs(await redis_client.pttl(key) - remaining_ms(record.expires_at)) < 1500
    assert [r.digest for r in await store.list_for_user(record.user_id)] == [record.digest]


async def test_a_step_up_keeps_the_expiry_and_a_touch_never_passes_the_absolute_one(
    store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    record = _record(new_id(), now=now, idle_expires_at=now + 100, absolute_expires_at=now + 300)
    await store.create(record)
    key = redis_prefix.encode() + b"s:" + session_key_part(record.digest)
    await step_up(store, record, now + 1, (Amr.PASSWORD, Amr.OTP))
    assert abs(await redis_client.pttl(key) - remaining_ms(now + 100)) < 1500
    await store.touch(record.digest, last_seen_at=now + 2, idle_expires_at=now + 900)
    assert abs(await redis_client.pttl(key) - remaining_ms(now + 300)) < 1500


async def test_a_read_after_redis_forgot_the_scripts_loads_them_again(tmp_path: Path) -> None:
    server = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path, durable=False)
    server.start()
    client = redis_connect(server.url)
    try:
        store = RedisSessionStore(client, "t:")
        record = _record(new_id())
        await store.create(record)
        await client.script_flush()
        assert await store.get(record.digest) == record
        await client.script_flush()
        assert await store.list_for_user(record.user_id) == [record]
    finally:
        await client.aclose()
        server.kill()


# --- Sessions the previous version wrote -------------------------------------------------------------


@pytest.fixture(params=["hex", "text"])
def user_id(request: pytest.FixtureRequest) -> str:
    """A user id of 32 hex digits (the two formats index it under two keys) or not (under one)."""
    return new_id() if request.param == "hex" else "u-" + new_id()


@pytest.fixture
async def upgraded(
    store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str, user_id: str
) -> tuple[list[SessionRecord], SessionRecord]:
    """Two sessions the previous version wrote and one this version wrote, of one user."""
    now = time.time()
    old = [
        _record(user_id, now=now),
        replace(
            _record(user_id, now=now, ip="203.0.113.5", device_label="Firefox | on Linux", user_agent=""),
            org_id=new_id(),
            upstream_acr="urn:acr",
            upstream_amr=("pwd", "mfa"),
        ),
    ]
    for record in old:
        await legacy.create(redis_client, redis_prefix, record)
    new = _record(user_id, now=now)
    await store.create(new)
    return old, new


async def test_the_previous_versions_sessions_are_read_as_written(
    store: RedisSessionStore, upgraded: tuple[list[SessionRecord], SessionRecord]
) -> None:
    old, new = upgraded
    for record in [*old, new]:
        assert await store.get(record.digest) == record
    listed = await store.list_for_user(new.user_id)
    assert sorted(listed, key=lambda r: r.digest) == sorted([*old, new], key=lambda r: r.digest)


async def test_the_previous_versions_sessions_are_touched_and_stepped_up_in_their_format(
    store: RedisSessionStore, redis_client: aioredis.Redis, redis_prefix: str,
    upgraded: tuple[list[SessionRecord], SessionRecord],
) -> None:  # fmt: skip
    old, _ = upgraded
    record = old[1]
    key = legacy.key(redis_prefix, record.digest)
    now = time.time()
    record = await touch(store, record, now + 10.5, now + 1800.25)
    assert await store.get(record.digest) == record
    assert abs(await redis_client.pttl(key) - remaining_ms(record.expires_at)) < 1500
    record = await step_up(store, record, now + 11.0, (Amr.PASSWORD, Amr.HARDWARE_KEY))
    assert await store.get(record.digest) == record
    assert abs(await redis_client.pttl(key) - remaining_ms(record.expires_at)) < 1500
    assert await redis_client.get(key) == legacy.encode(record)  # still the previous format, where it was


async def test_revoke_all_ends_the_sessions_of_both_formats_but_the_kept_one(
    store: RedisSessionStore, upgraded: tuple[list[SessionRecord], SessionRecord]
) -> None:
    old, new = upgraded
    assert await store.delete_for_user(new.user_id, except_digest=old[0].digest) == 2
    assert await store.get(old[0].digest) == old[0]
    assert await store.get(old[1].digest) is None
    assert await store.get(new.digest) is None
    assert await store.list_for_user(new.user_id) == [old[0]]

    another = _record(new.user_id)
    await store.create(another)
    assert await store.delete_for_user(new.user_id, except_digest=another.digest) == 1
    assert await store.list_for_user(new.user_id) == [another]


async def test_one_of_the_previous_versions_sessions_is_deleted_with_its_index_entry(
    store: RedisSessionStore, redis_url: str, redis_prefix: str,
    upgraded: tuple[list[SessionRecord], SessionRecord],
) -> None:  # fmt: skip
    old, new = upgraded
    assert await store.delete(old[0].digest) is True
    assert await store.delete(old[0].digest) is False
    assert await store.get(old[0].digest) is None
    client = aioredis.from_url(redis_url)  # binary keys
    try:
        parts = await client.hkeys(legacy.index(redis_prefix, new.user_id))
        assert legacy.short(old[0].digest).encode() not in parts
        assert legacy.short(old[1].digest).encode() in parts
    finally:
        await client.aclose()
    assert await store.delete_for_user(new.user_id) == 2
    assert await store.list_for_user(new.user_id) == []


async def test_the_list_forgets_ended_sessions_in_either_index(
    store: RedisSessionStore,
    redis_url: str,
    redis_prefix: str,
    upgraded: tuple[list[SessionRecord], SessionRecord],
) -> None:
    old, new = upgraded
    client = aioredis.from_url(redis_url)  # binary keys
    try:
        prefix = redis_prefix.encode()
        await client.delete(
            legacy.key(redis_prefix, old[0].digest), prefix + b"s:" + session_key_part(new.digest)
        )
        assert await store.list_for_user(new.user_id) == [old[1]]
        parts = [
            *await client.hkeys(prefix + b"us:" + user_key_part(new.user_id)),
            *await client.hkeys(legacy.index(redis_prefix, new.user_id)),
        ]
        assert sorted(set(parts)) == [legacy.short(old[1].digest).encode()]
    finally:
        await client.aclose()
