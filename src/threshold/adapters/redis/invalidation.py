"""Session-cache invalidation over Redis pub/sub.

Redis writes a published message into every subscriber's socket before it answers the publisher, so
by the time a revocation's HTTP response leaves one process the message is already waiting at every
other. The listener runs on a connection of its own without silent reconnects: if it drops, messages
could be missed, so the cache is switched off (and emptied) until the feed delivers again. Whether it
delivers is proven, not assumed: every second this process publishes a heartbeat on the channel and
needs it back on the subscription (see adapters/feed_heartbeat.py), which also catches a connection
that hangs without closing and a proxy that answers commands but does not carry pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from threshold.adapters.feed_heartbeat import INTERVAL, SILENT_AFTER, Feed, Heartbeat, Outages, Publish
from threshold.adapters.redis.stores import translate_errors
from threshold.core.errors import DependencyUnavailable
from threshold.core.session_cache import SessionCache

log = logging.getLogger(__name__)


def channel_name(prefix: str) -> str:
    return f"{prefix}invalidate"


class RedisInvalidations:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self.channel = channel_name(prefix)

    async def publish(self, message: str) -> int:
        """Redis answers with the number of subscribers it delivered the message to (on the server the
        client reached: Threshold's Redis is one server, or a primary with replicas, not a cluster)."""
        with translate_errors():
            receivers: int = await self._redis.publish(self.channel, message)
        return receivers


async def listen(
    url: str,
    channel: str,
    cache: SessionCache,
    *,
    publish: Publish,
    heartbeat: float = INTERVAL,
    retry_delay: float = 0.5,
) -> None:
    """Feed `cache` from the channel until cancelled; the cache is live only while the feed delivers:
    while this process's heartbeats, sent with `publish` (as every invalidation is), come back."""
    outages = Outages()
    while True:
        client = aioredis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=3,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name=channel,
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            await _consume(pubsub, channel, cache, Heartbeat(publish, interval=heartbeat))
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError, TimeoutError, DependencyUnavailable) as error:
            outages.note(error, cache)
        except Exception:
            log.exception("session cache off: invalidation listener failed")
        finally:
            cache.set_live(False)
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except (RedisError, OSError):
                pass
        await asyncio.sleep(retry_delay)


async def _consume(
    pubsub: aioredis.client.PubSub, channel: str, cache: SessionCache, heartbeat: Heartbeat
) -> None:
    """Read the subscription in a task of its own while the heartbeat runs; whichever ends first (the
    connection lost, or a heartbeat that did not come back) ends the other."""
    async with asyncio.timeout(SILENT_AFTER * heartbeat.interval):
        while True:  # the first beat is sent once the subscription is in place
            message = await pubsub.get_message(timeout=heartbeat.interval)
            if message is not None and message["type"] == "subscribe" and message["channel"] == channel:
                break
    lost = asyncio.Event()
    reader = asyncio.create_task(_read(pubsub, Feed(cache, heartbeat)))
    reader.add_done_callback(lambda _task: lost.set())
    try:
        await heartbeat.keep(cache, lost=lost)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader  # its error, if it ended with one, is the reason the feed is lost


async def _read(pubsub: aioredis.client.PubSub, feed: Feed) -> None:
    while True:
        message = await pubsub.get_message(timeout=None)
        if message is not None and message["type"] == "message":
            feed.deliver(message["data"])
