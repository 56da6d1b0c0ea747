"""MarkStore: single-use marks with an expiry (SQL and Redis): replayed assertions, revoked token ids."""

from __future__ import annotations

import asyncio
import time

from threshold.core.secrets import new_id
from threshold.oidc.ports import MarkStore


def _key() -> str:
    return f"jti:{new_id()}"


async def test_a_mark_is_set_once(marks: MarkStore) -> None:
    key, other = _key(), _key()
    now = time.time()

    assert await marks.exists(key, now=now) is False
    assert await marks.add(key, expires_at=now + 60) is True
    assert await marks.exists(key, now=now) is True
    assert await marks.add(key, expires_at=now + 120) is False
    assert await marks.exists(other, now=now) is False


async def test_an_expired_mark_can_be_set_again(marks: MarkStore) -> None:
    key = _key()
    assert await marks.add(key, expires_at=time.time() + 0.3) is True
    await asyncio.sleep(0.5)

    assert await marks.exists(key, now=time.time()) is False
    assert await marks.add(key, expires_at=time.time() + 60) is True
    assert await marks.exists(key, now=time.time()) is True


async def test_of_concurrent_adders_exactly_one_sets_the_mark(marks: MarkStore) -> None:
    for _ in range(5):
        key = _key()
        added = await asyncio.gather(*(marks.add(key, expires_at=time.time() + 60) for _ in range(8)))
        assert sorted(added) == [*[False] * 7, True]
