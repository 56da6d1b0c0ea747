"""The invalidation feed (adapters/feed_heartbeat.py) against a feed made of callbacks. The heartbeat:
the cache goes on only once a beat came back, stays on while they do, and goes off when one does not.
The acknowledgements (core/session_cache.py `Acks`): a revocation returns once every process the feed
delivered it to has applied it, slow ones included, within a bound for one that never answers."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.unit.test_session_cache import _record as session_record
from tests.unit.test_session_cache import _user as user
from threshold.adapters.feed_heartbeat import HEARTBEAT_PREFIX, Feed, FeedSilent, Heartbeat, Outages
from threshold.core.session_cache import ACK_PREFIX, ITEM_PREFIX, Acks, Invalidator, SessionCache

INTERVAL = 0.05


def _cache() -> SessionCache:
    return SessionCache(max_entries=10, max_age=60)


async def test_heartbeats_are_kept_from_the_cache_and_old_versions_drop_nothing() -> None:
    beat = Heartbeat(lambda message: asyncio.sleep(0, result=0), interval=INTERVAL)
    assert HEARTBEAT_PREFIX.startswith(ITEM_PREFIX)
    assert beat.heard(f"{HEARTBEAT_PREFIX}someone-else")
    assert not beat.heard("s:digest") and not beat.heard("u:user") and not beat.heard("i:client:x")


async def test_the_cache_goes_on_with_the_first_echo_and_off_when_one_is_missing() -> None:
    cache = _cache()
    lost = asyncio.Event()
    delivering = True
    beat: Heartbeat

    async def publish(message: str) -> int:
        if delivering:
            asyncio.get_running_loop().call_soon(beat.heard, message)  # back on the listening side
        return 1

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
    beat = Heartbeat(lambda message: asyncio.sleep(0, result=0), interval=10)  # never echoed, long bound
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


# --- Acknowledgements: a revocation returns once every listening process has applied it -------------


class Broker:
    """Pub/sub on one event loop: every subscriber is handed each message `delay` seconds late (its own),
    and `publish` answers with the number of subscribers, as Redis does."""

    def __init__(self) -> None:
        self.subscribers: list[tuple[Feed, float]] = []

    async def publish(self, message: str) -> int:
        loop = asyncio.get_running_loop()
        for feed, delay in self.subscribers:
            loop.call_later(delay, feed.deliver, message)
        return len(self.subscribers)


def _process(broker: Broker, *, delay: float, acknowledges: bool = True) -> tuple[SessionCache, Invalidator]:
    """A process on the broker whose listener hears it `delay` late, its feed live."""
    cache = _cache()
    cache.expect_feed(1.0)
    cache.set_live(True)
    publish = broker.publish if acknowledges else (lambda message: asyncio.sleep(0, result=0))
    broker.subscribers.append((Feed(cache, Heartbeat(publish, interval=INTERVAL)), delay))
    return cache, Invalidator(cache, broker)


def _cached(cache: SessionCache, key: str, user_id: str = "user-1") -> None:
    cache.put(key, session_record(key, user_id), user(user_id), epoch=cache.epoch)
    assert cache.get(key) is not None


async def test_a_revocation_returns_only_once_a_slow_process_has_dropped_the_session() -> None:
    broker = Broker()
    here, invalidator = _process(broker, delay=0.001)
    slow, _ = _process(broker, delay=0.3)
    _cached(slow, "digest-1")

    started = time.monotonic()
    await invalidator.session_changed("digest-1")

    assert slow.get("digest-1") is None
    assert 0.3 <= time.monotonic() - started < 0.9
    assert here.get("digest-1") is None


async def test_a_user_change_reaches_every_process_before_it_returns() -> None:
    broker = Broker()
    _, invalidator = _process(broker, delay=0)
    others = [_process(broker, delay=0.05 * n)[0] for n in range(1, 4)]
    for cache in others:
        _cached(cache, "digest-2", "user-2")

    await invalidator.user_changed("user-2")

    assert all(cache.get("digest-2") is None for cache in others)


async def test_a_process_that_never_acknowledges_costs_the_bound_and_no_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = Broker()
    here, invalidator = _process(broker, delay=0)
    here.expect_feed(0.2)
    mute, _ = _process(broker, delay=0, acknowledges=False)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="threshold.core.session_cache"):
        await invalidator.session_changed("digest-3")

    assert 0.2 <= time.monotonic() - started < 0.9
    assert "1 listening process(es) did not acknowledge" in caplog.text
    assert "digest-3" not in caplog.text
    assert mute.get("digest-3") is None  # it applied it; only its acknowledgement never came


async def test_a_process_whose_feed_never_delivered_does_not_wait() -> None:
    """Behind a transaction-mode PgBouncer no process's feed ever delivers, so no cache answers."""
    broker = Broker()
    cache = _cache()
    broker.subscribers.append((Feed(cache, Heartbeat(broker.publish, interval=INTERVAL)), 0))
    _process(broker, delay=5)

    started = time.monotonic()
    await Invalidator(cache, broker).session_changed("digest-4")

    assert time.monotonic() - started < 1.0


async def test_a_process_that_lost_its_feed_waits_out_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    """It cannot hear the acknowledgements, and a process whose feed still delivers (slowly) may
    answer from memory until it has the message: at most the bound."""
    broker = Broker()
    here, invalidator = _process(broker, delay=0)
    here.expect_feed(0.3)
    slow, _ = _process(broker, delay=0.2)
    _cached(slow, "digest-5")
    here.set_live(False)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="threshold.core.session_cache"):
        await invalidator.session_changed("digest-5")

    assert time.monotonic() - started >= 0.3
    assert slow.get("digest-5") is None
    assert "does not hear the feed" in caplog.text and "digest-5" not in caplog.text


async def test_losing_the_feed_while_waiting_waits_out_the_bound() -> None:
    broker = Broker()
    here, invalidator = _process(broker, delay=0)
    here.expect_feed(0.4)
    slow, _ = _process(broker, delay=0.3)
    _cached(slow, "digest-10")
    asyncio.get_running_loop().call_later(0.05, here.set_live, False)

    await invalidator.session_changed("digest-10")

    assert slow.get("digest-10") is None


class NamingBroker(Broker):
    """PostgreSQL's way: `publish` names the listeners it reached (their `me`)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[int, str] = {}

    async def publish(self, message: str) -> frozenset[str]:  # type: ignore[override]
        await super().publish(message)
        return frozenset(self.names[id(feed)] for feed, _ in self.subscribers if id(feed) in self.names)


def _named(broker: NamingBroker, name: str, *, delay: float) -> tuple[SessionCache, Invalidator]:
    cache = _cache()
    cache.expect_feed(1.0)
    cache.set_live(True)
    feed = Feed(cache, Heartbeat(broker.publish, interval=INTERVAL), me=name)
    broker.subscribers.append((feed, delay))
    broker.names[id(feed)] = name
    return cache, Invalidator(cache, broker)


async def test_a_listener_that_joins_meanwhile_cannot_stand_in_for_a_slow_one() -> None:
    """On PostgreSQL a listener can join between the count and the commit, and acknowledge: by name,
    its acknowledgement is not the slow listener's."""
    broker = NamingBroker()
    _, invalidator = _named(broker, "101", delay=0)
    slow, _ = _named(broker, "102", delay=0.3)
    _cached(slow, "digest-11")
    newcomer = _cache()
    newcomer.set_live(True)
    joining = Feed(newcomer, Heartbeat(broker.publish, interval=INTERVAL), me="103")
    broker.subscribers.append((joining, 0))  # reached, but not among the names the publish reports

    await invalidator.session_changed("digest-11")

    assert slow.get("digest-11") is None


async def test_a_starting_listener_is_waited_for_so_that_acknowledgements_reach_it() -> None:
    """A CLI command's revocation, made before its listener delivers, waits for it (bounded)."""
    broker = Broker()
    here = _cache()
    here.expect_feed(1.0)
    broker.subscribers.append((Feed(here, Heartbeat(broker.publish, interval=INTERVAL)), 0))
    slow, _ = _process(broker, delay=0.2)
    _cached(slow, "digest-6")
    asyncio.get_running_loop().call_later(0.1, here.set_live, True)

    await Invalidator(here, broker).session_changed("digest-6")

    assert slow.get("digest-6") is None


def test_messages_without_an_envelope_are_applied_and_unknown_ones_empty_the_cache() -> None:
    """What a process of an earlier version publishes still works; what it receives from this one
    (an envelope, an acknowledgement) costs it at most its cache, never a stale answer."""
    cache = _cache()
    cache.set_live(True)
    feed = Feed(cache, Heartbeat(lambda message: asyncio.sleep(0, result=0), interval=INTERVAL))
    _cached(cache, "digest-7")
    _cached(cache, "digest-8", "user-8")
    feed.deliver("s:digest-7")
    assert cache.get("digest-7") is None and cache.get("digest-8") is not None

    old = SessionCache(max_entries=10, max_age=60)
    old.set_live(True)
    _cached(old, "digest-9")
    envelope, _ = Acks().envelope("s:digest-other")
    old.apply(envelope)
    assert old.get("digest-9") is None
    _cached(old, "digest-9")
    old.apply(f"{ACK_PREFIX}sender:1:receiver")
    assert old.get("digest-9") is not None
