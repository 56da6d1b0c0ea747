"""EphemeralStore: short-lived values shared by every process (SQL and Redis); `take` is single-use."""

from __future__ import annotations

import asyncio
import time

from threshold.core.ports import EphemeralStore
from threshold.core.secrets import new_id


def _key() -> str:
    return f"pending:{new_id()}"


async def test_put_get_take(ephemeral: EphemeralStore) -> None:
    key, other = _key(), _key()
    now = time.time()
    await ephemeral.put(key, '{"user": "ada", "note": "\u00e9\u2603"}', expires_at=now + 60)
    await ephemeral.put(other, "kept", expires_at=now + 60)

    assert await ephemeral.get(key, now=now) == '{"user": "ada", "note": "\u00e9\u2603"}'
    assert await ephemeral.get(key, now=now) is not None  # get leaves it
    assert await ephemeral.take(key, now=now) == '{"user": "ada", "note": "\u00e9\u2603"}'
    assert await ephemeral.take(key, now=now) is None
    assert await ephemeral.get(key, now=now) is None
    assert await ephemeral.get(other, now=now) == "kept"
    assert await ephemeral.get(_key(), now=now) is None


async def test_put_replaces(ephemeral: EphemeralStore) -> None:
    key = _key()
    now = time.time()
    await ephemeral.put(key, "first", expires_at=now + 60)
    await ephemeral.put(key, "second", expires_at=now + 120)
    assert await ephemeral.get(key, now=now) == "second"


async def test_delete(ephemeral: EphemeralStore) -> None:
    key = _key()
    now = time.time()
    await ephemeral.put(key, "value", expires_at=now + 60)
    await ephemeral.delete(key)
    assert await ephemeral.get(key, now=now) is None
    assert await ephemeral.take(key, now=now) is None
    await ephemeral.delete(key)  # deleting what is gone is no error


async def test_an_expired_value_is_gone(ephemeral: EphemeralStore) -> None:
    key, stale = _key(), _key()
    await ephemeral.put(stale, "stale", expires_at=time.time() - 1)
    await ephemeral.put(key, "brief", expires_at=time.time() + 0.3)
    await asyncio.sleep(0.5)

    now = time.time()
    for gone in (key, stale):
        assert await ephemeral.get(gone, now=now) is None
        assert await ephemeral.take(gone, now=now) is None


async def test_of_concurrent_takers_exactly_one_gets_the_value(ephemeral: EphemeralStore) -> None:
    for _ in range(5):
        key = _key()
        now = time.time()
        await ephemeral.put(key, "once", expires_at=now + 60)

        taken = await asyncio.gather(*(ephemeral.take(key, now=now) for _ in range(8)))

        assert taken.count("once") == 1
        assert taken.count(None) == 7


async def test_add_stores_only_when_no_live_value(ephemeral: EphemeralStore) -> None:
    now = time.time()
    key = f"replay:{new_id()}"
    assert await ephemeral.add(key, "first", expires_at=now + 60, now=now)
    assert not await ephemeral.add(key, "second", expires_at=now + 60, now=now)
    assert await ephemeral.get(key, now=now) == "first"

    expired = f"replay:{new_id()}"
    await ephemeral.put(expired, "old", expires_at=now - 1)
    assert await ephemeral.add(expired, "new", expires_at=now + 60, now=now)
    assert await ephemeral.get(expired, now=now) == "new"


async def test_of_concurrent_adders_exactly_one_wins(ephemeral: EphemeralStore) -> None:
    now = time.time()
    key = f"replay:{new_id()}"
    results = await asyncio.gather(
        *(ephemeral.add(key, str(i), expires_at=now + 60, now=now) for i in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]
