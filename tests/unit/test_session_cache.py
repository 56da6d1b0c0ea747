"""The process-local session cache: answers only while its feed is live, never re-admits a revoked entry."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from threshold.core.models import Aal, Amr, SessionRecord, User
from threshold.core.session_cache import SessionCache


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _user(user_id: str = "u1") -> User:
    return User(
        id=user_id,
        email=f"{user_id}@example.com",
        email_normalized=f"{user_id}@example.com",
        email_verified=True,
        disabled=False,
        created_at=0.0,
    )


def _record(key: str, user_id: str = "u1") -> SessionRecord:
    return SessionRecord(
        digest=key,
        public_id="p-" + key,
        user_id=user_id,
        created_at=0.0,
        last_seen_at=0.0,
        idle_expires_at=100.0,
        absolute_expires_at=200.0,
        aal=Aal.AAL1,
        amr=(Amr.PASSWORD,),
        ip="127.0.0.1",
        user_agent="ua",
        device_label="",
    )


def _live(ticks: Ticks | None = None, **kwargs: float) -> SessionCache:
    cache = SessionCache(
        max_entries=int(kwargs.get("max_entries", 100)),
        max_age=kwargs.get("max_age", 5.0),
        monotonic=ticks or Ticks(),
    )
    cache.set_live(True)
    return cache


def test_answers_what_was_put_while_live() -> None:
    cache = _live()
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") == (_record("a"), _user())


def test_answers_nothing_until_the_feed_is_live_and_forgets_everything_when_it_drops() -> None:
    cache = SessionCache(max_entries=100, max_age=5.0)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is None and len(cache) == 0
    cache.set_live(True)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is not None
    cache.set_live(False)
    assert cache.get("a") is None and len(cache) == 0


def test_an_invalidation_during_the_store_read_keeps_the_stale_read_out() -> None:
    cache = _live()
    epoch = cache.epoch  # the check starts reading the store...
    cache.apply("s:a")  # ...a revocation of that very session arrives meanwhile...
    cache.put("a", _record("a"), _user(), epoch=epoch)  # ...and the read it made is not kept
    assert cache.get("a") is None


def test_session_and_user_messages_drop_exactly_their_entries() -> None:
    cache = _live()
    for key, user_id in (("a", "u1"), ("b", "u1"), ("c", "u2")):
        cache.put(key, _record(key, user_id), _user(user_id), epoch=cache.epoch)
    cache.apply("s:a")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.apply("u:u1")
    assert cache.get("b") is None and cache.get("c") is not None
    cache.apply("garbage")  # unknown message: drop everything rather than guess
    assert len(cache) == 0


def test_entries_age_out() -> None:
    ticks = Ticks()
    cache = _live(ticks, max_age=5.0)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    ticks.now += 4.9
    assert cache.get("a") is not None
    ticks.now += 0.2
    assert cache.get("a") is None


def test_size_is_bounded_oldest_first() -> None:
    cache = _live(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, _record(key), _user(), epoch=cache.epoch)
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("b") is not None and cache.get("c") is not None


def test_a_probe_reporting_a_change_empties_the_cache() -> None:
    changes = [False]
    cache = SessionCache(max_entries=10, max_age=5.0, probe=lambda: changes[0])
    assert cache.live  # a probed cache needs no listener
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is not None
    changes[0] = True
    assert cache.get("a") is None and len(cache) == 0


def test_replacing_an_entry_keeps_the_user_index_right() -> None:
    cache = _live()
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    cache.put("a", replace(_record("a"), aal=Aal.AAL2), _user(), epoch=cache.epoch)
    cache.apply("u:u1")
    assert cache.get("a") is None and len(cache) == 0


def test_disabled_cache_keeps_nothing() -> None:
    cache = SessionCache(max_entries=0, max_age=5.0)
    cache.set_live(True)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is None


# --- items (OAuth clients): one read at a time, read again ahead of expiry --------------------------


class SlowStore:
    """Counts reads; each waits until released, then answers the current value."""

    def __init__(self, value: str | None = "v1") -> None:
        self.value = value
        self.reads = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def read(self) -> str | None:
        self.reads += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.value


async def test_concurrent_misses_share_one_store_read() -> None:
    cache, store = _live(), SlowStore()
    waiting = [asyncio.ensure_future(cache.item("i:k", store.read)) for _ in range(50)]
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 50
    assert store.reads == 1
    assert await cache.item("i:k", store.read) == "v1" and store.reads == 1  # kept


async def test_a_request_after_an_invalidation_does_not_join_a_read_that_began_before_it() -> None:
    cache, store = _live(), SlowStore()
    before = asyncio.ensure_future(cache.item("i:k", store.read))
    await asyncio.sleep(0)
    cache.apply("i:k")  # the client changed (deleted) while the first read was under way
    store.value = None
    after = asyncio.ensure_future(cache.item("i:k", store.read))
    await asyncio.sleep(0)
    store.release.set()
    await before
    assert await after is None and store.reads == 2
    store.value = "v2"
    assert await cache.item("i:k", store.read) == "v2"  # the stale first read was not kept


async def test_a_hot_item_is_read_again_ahead_of_expiry_and_never_answered_past_it() -> None:
    ticks = Ticks()
    cache, store = _live(ticks, max_age=10.0), SlowStore()
    store.release.set()
    assert await cache.item("i:k", store.read) == "v1" and store.reads == 1
    ticks.now += 4.9
    assert await cache.item("i:k", store.read) == "v1" and store.reads == 1  # young: memory only
    store.value, store.release = "v2", asyncio.Event()
    ticks.now += 0.2  # past half its age: answered from memory, and one read starts behind it
    assert await cache.item("i:k", store.read) == "v1"
    await asyncio.sleep(0)
    assert await cache.item("i:k", store.read) == "v1" and store.reads == 2  # one read ahead only
    store.release.set()
    await asyncio.sleep(0.01)
    assert await cache.item("i:k", store.read) == "v2" and store.reads == 2
    ticks.now += 10.0  # expired, with its read ahead never finishing: the request waits for the store
    store.value, store.release = "v3", asyncio.Event()
    pending = asyncio.ensure_future(cache.item("i:k", store.read))
    await asyncio.sleep(0.01)
    assert not pending.done()
    store.release.set()
    assert await pending == "v3"


async def test_a_failed_read_reaches_every_waiter_and_keeps_nothing() -> None:
    cache, store = _live(), SlowStore()
    store.fail = ConnectionError("store down")
    waiting = [asyncio.ensure_future(cache.item("i:k", store.read)) for _ in range(3)]
    await asyncio.sleep(0)
    store.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and store.reads == 1
    store.fail = None
    assert await cache.item("i:k", store.read) == "v1" and store.reads == 2


async def test_items_are_read_every_time_while_the_feed_is_lost() -> None:
    cache, store = _live(), SlowStore()
    store.release.set()
    await cache.item("i:k", store.read)
    cache.set_live(False)
    await cache.item("i:k", store.read)
    await cache.item("i:k", store.read)
    assert store.reads == 3
