"""The invalidation feed's heartbeat (adapters/feed_heartbeat.py) against a feed made of a callback: the
cache goes on only once a beat came back, stays on while they do, and goes off when one does not."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from threshold.adapters.feed_heartbeat import HEARTBEAT_PREFIX, FeedSilent, Heartbeat, Outages
from threshold.core.session_cache import ITEM_PREFIX, SessionCache

INTERVAL = 0.05


def _cache() -> SessionCache:
    return SessionCache(max_entries=10, max_age=60)


async def test_heartbeats_are_kept_from_the_cache_and_old_versions_drop_nothing() -> None:
    beat = Heartbeat(lambda message: asyncio.sleep(0), interval=INTERVAL)
    assert HEARTBEAT_PREFIX.startswith(ITEM_PREFIX)
    assert beat.heard(f"{HEARTBEAT_PREFIX}someone-else")
    assert not beat.heard("s:digest") and not beat.heard("u:user") and not beat.heard("i:client:x")


async def test_the_cache_goes_on_with_the_first_echo_and_off_when_one_is_missing() -> None:
    cache = _cache()
    lost = asyncio.Event()
    delivering = True
    beat: Heartbeat

    async def publish(message: str) -> None:
        if delivering:
            asyncio.get_running_loop().call_soon(beat.heard, message)  # back on the listening side

    beat = Heartbeat(publish, interval=INTERVAL)
    task = asyncio.create_task(beat.keep(cache, lost=lost))
    while not cache.live:
        await asyncio.sleep(0.005)
    await asyncio.sleep(5 * INTERVAL)
    assert cache.live and not task.done()

    delivering = False
    started = time.monotonic()
    with pytest.raises(FeedSilent, match="did not come back"):
        await task
    assert time.monotonic() - started < 5 * INTERVAL


async def test_a_lost_connection_ends_the_heartbeat_at_once() -> None:
    cache = _cache()
    lost = asyncio.Event()
    beat = Heartbeat(lambda message: asyncio.sleep(0), interval=10)  # never echoed, long bound
    task = asyncio.create_task(beat.keep(cache, lost=lost))
    await asyncio.sleep(0.05)
    lost.set()
    started = time.monotonic()
    with pytest.raises(ConnectionError) as raised:
        await task
    assert not isinstance(raised.value, FeedSilent)
    assert time.monotonic() - started < 1
    assert not cache.live


def test_a_feed_that_never_delivers_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    cache, outages = _cache(), Outages()
    with caplog.at_level(logging.WARNING, logger="threshold.adapters.feed_heartbeat"):
        for _ in range(5):
            outages.note(FeedSilent("heartbeat not back"), cache)
        assert len(caplog.records) == 1
        cache.set_live(True)
        outages.note(FeedSilent("heartbeat not back"), cache)  # silent again after it had delivered
        outages.note(ConnectionResetError(), cache)
    assert len(caplog.records) == 3
