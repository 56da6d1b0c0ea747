"""The invalidation feed's heartbeat: proof that the feed delivers, sent through the feed itself.

A connection can stay open and answer queries while the feed on it delivers nothing: LISTEN behind a
transaction-mode pooler (PgBouncer), a proxy without pub/sub, a subscription lost on the server's side.
`SELECT 1` or PING pass there. So each process publishes a message with a nonce of its own, the way
every invalidation is published (another connection, the same pool), and requires it back on its
listening connection within a bound; until the first one is back, and from the first one that is not,
the session cache is off and every check goes to the store.

Heartbeats are item keys (`ITEM_PREFIX`) that no record uses: the listener takes them out before the
cache sees them, and a process of an earlier version, which hands them to its cache, drops nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from threshold.core.session_cache import ITEM_PREFIX, Receivers, SessionCache

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = ITEM_PREFIX + "heartbeat:"
SILENT_AFTER = 3
"""Heartbeat intervals a beat may take to come back before the feed counts as silent."""
INTERVAL = 1.0
"""Seconds between a beat's return and the next beat."""
LAGS_AT_MOST = (SILENT_AFTER + 2) * INTERVAL
"""The longest a process's cache stays on after its feed stopped delivering: a beat came back just
before, the next goes out an interval later and counts as lost `SILENT_AFTER` intervals after that;
one more interval for a busy event loop. What a revocation waits at most for acknowledgements."""

Publish = Callable[[str], Awaitable[Receivers]]


class FeedSilent(ConnectionError):
    """A heartbeat sent through the feed did not come back in time."""


class Heartbeat:
    """One listening connection's heartbeat. The listener passes every message through `heard`;
    `keep` beats until the connection is lost or falls silent."""

    def __init__(self, publish: Publish, *, interval: float) -> None:
        self.publish = publish
        self.interval = interval
        self._expected: str | None = None
        self._echoed = asyncio.Event()

    def heard(self, message: str) -> bool:
        """Whether `message` is a heartbeat (this process's, or another's): not for the cache."""
        if not message.startswith(HEARTBEAT_PREFIX):
            return False
        if message == self._expected:
            self._echoed.set()
        return True

    async def keep(self, cache: SessionCache, *, lost: asyncio.Event) -> None:
        """Beat every interval; the cache is on from the first beat that came back. Raises FeedSilent
        when a beat does not come back, ConnectionError as soon as `lost` is set."""
        while not lost.is_set():
            await self._round_trip(lost)
            if not cache.live:
                cache.set_live(True)
                log.info("session cache on: the invalidation feed delivers")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=self.interval)
        raise ConnectionError("invalidation feed lost")

    async def _round_trip(self, lost: asyncio.Event) -> None:
        self._expected = f"{HEARTBEAT_PREFIX}{secrets.token_hex(12)}"
        self._echoed.clear()
        bound = SILENT_AFTER * self.interval
        waits = [asyncio.ensure_future(self._echoed.wait()), asyncio.ensure_future(lost.wait())]
        try:
            async with asyncio.timeout(bound):
                await self.publish(self._expected)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise FeedSilent(
                f"a heartbeat sent through the invalidation feed did not come back within {bound:.1f} s "
                "(a pooler or proxy that does not deliver NOTIFY or pub/sub?)"
            ) from None
        finally:
            for wait in waits:
                wait.cancel()
        if not self._echoed.is_set():
            raise ConnectionError("invalidation feed lost")


class Feed:
    """What a listening connection does with each payload: a heartbeat is the heartbeat's; anything else
    goes through the acknowledgement protocol (core/session_cache.py `Acks`) to the cache, and what
    another process's revocation is owed is published once the cache has applied it."""

    def __init__(
        self,
        cache: SessionCache,
        heartbeat: Heartbeat,
        *,
        me: str | None = None,
        acknowledge: Publish | None = None,
    ) -> None:
        """`me` is this listener as the feed's publish names its receivers (by default the process's
        sender id, for a feed that counts them); `acknowledge` publishes an acknowledgement (by default
        as the heartbeat is published): on PostgreSQL the listening connection itself, so that an
        acknowledgement never waits for a pooled connection held by a request that is itself waiting
        for one."""
        self._cache = cache
        self._heartbeat = heartbeat
        self._me = me or cache.acks.sender
        self._acknowledge_with = acknowledge or heartbeat.publish
        self._sending: set[asyncio.Task[None]] = set()

    def deliver(self, payload: str) -> None:
        if self._heartbeat.heard(payload):
            return
        message, ack = self._cache.acks.received(payload, me=self._me)
        if message is not None:
            self._cache.apply(message)
        if ack is not None:
            task = asyncio.ensure_future(self._acknowledge(ack))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _acknowledge(self, ack: str) -> None:
        try:
            await self._acknowledge_with(ack)
        except Exception as error:  # the sender waits out its bound; this feed's heartbeat will tell
            log.warning("session cache: an acknowledgement could not be published (%s)", type(error).__name__)


class Outages:
    """What the listener logs when the cache goes off: each loss of a live feed, and a feed that never
    delivered once (not again at every retry)."""

    def __init__(self) -> None:
        self._silence_told = False

    def note(self, error: BaseException, cache: SessionCache) -> None:
        if isinstance(error, FeedSilent):
            if cache.live or not self._silence_told:
                log.warning("session cache off: %s", error)
            self._silence_told = True
        elif cache.live:
            log.warning("session cache off: invalidation feed lost (%s)", type(error).__name__)
