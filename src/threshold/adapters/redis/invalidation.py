"""Session-cache invalidation over Redis pub/sub.

Redis writes a published message into every subscriber's socket before it answers the publisher, so
by the time a revocation's HTTP response leaves one process the message is already waiting at every
other. The listener runs on a connection of its own without silent reconnects: if it drops, messages
could be missed, so the cache is switched off (and emptied) until the subscription is confirmed again.
A ping every `heartbeat` seconds catches a connection that hangs without closing.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from threshold.adapters.redis.stores import translate_errors
from threshold.core.session_cache import SessionCache

log = logging.getLogger(__name__)


def channel_name(prefix: str) -> str:
    return f"{prefix}invalidate"


class RedisInvalidations:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self.channel = channel_name(prefix)

    async def publish(self, message: str) -> None:
        with translate_errors():
            await self._redis.publish(self.channel, message)


async def listen(
    url: str, channel: str, cache: SessionCache, *, heartbeat: float = 1.0, retry_delay: float = 0.5
) -> None:
    """Feed `cache` from the channel until cancelled; the cache is live only while subscribed."""
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
            await _consume(pubsub, channel, cache, heartbeat)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as error:
            if cache.live:
                log.warning("session cache off: invalidation feed lost (%s)", type(error).__name__)
        finally:
            cache.set_live(False)
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except (RedisError, OSError):
                pass
        await asyncio.sleep(retry_delay)


async def _consume(
    pubsub: aioredis.client.PubSub, channel: str, cache: SessionCache, heartbeat: float
) -> None:
    last_heard = time.monotonic()
    pinged = False
    while True:
        message = await pubsub.get_message(timeout=heartbeat)
        now = time.monotonic()
        if message is None:
            if now - last_heard > 3 * heartbeat:
                raise ConnectionError("invalidation feed silent")
            if not pinged:
                await pubsub.ping()
                pinged = True
            continue
        last_heard, pinged = now, False
        kind = message["type"]
        if kind == "message":
            cache.apply(message["data"])
        elif kind == "subscribe" and message["channel"] == channel:
            cache.set_live(True)
            log.info("session cache on: invalidation feed subscribed")
