"""Session store and rate-limit counters in Redis, shared by every process.

A session is a hash at `{prefix}s:{digest}` expiring when the session does; `{prefix}us:{user_id}` is
the set of a user's session digests. Revocation deletes the hash, which every process reads on every
check, so it takes effect everywhere on the next request.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from threshold.core.errors import DependencyUnavailable
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.ports import WindowCount


def connect(url: str) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """A Redis outage is a 503, never a 500 and never a false "logged out"."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise DependencyUnavailable() from error
    except RedisError as error:
        if "LOADING" in str(error) or "BUSY" in str(error):
            raise DependencyUnavailable() from error
        raise


# Only refresh a session that still exists: a revocation racing a last-seen update must win.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1], 'idle_expires_at', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


_UPDATE_AUTH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'auth_time', ARGV[1], 'aal', ARGV[2], 'amr', ARGV[3])
  return 1
end
return 0
"""


def _fields(record: SessionRecord) -> dict[str, str]:
    return {
        "public_id": record.public_id,
        "user_id": record.user_id,
        "created_at": repr(record.created_at),
        "last_seen_at": repr(record.last_seen_at),
        "idle_expires_at": repr(record.idle_expires_at),
        "absolute_expires_at": repr(record.absolute_expires_at),
        "auth_time": repr(record.auth_time),
        "aal": record.aal.value,
        "amr": ",".join(record.amr),
        "ip": record.ip,
        "user_agent": record.user_agent,
        "device_label": record.device_label,
    }


def _record(digest: str, fields: dict[str, str]) -> SessionRecord:
    return SessionRecord(
        digest=digest,
        public_id=fields["public_id"],
        user_id=fields["user_id"],
        created_at=float(fields["created_at"]),
        last_seen_at=float(fields["last_seen_at"]),
        idle_expires_at=float(fields["idle_expires_at"]),
        absolute_expires_at=float(fields["absolute_expires_at"]),
        auth_time=float(fields["auth_time"]),
        aal=Aal(fields["aal"]),
        amr=tuple(Amr(value) for value in fields["amr"].split(",") if value),
        ip=fields["ip"],
        user_agent=fields["user_agent"],
        device_label=fields["device_label"],
    )


def _expire_ms(record: SessionRecord) -> int:
    return math.ceil(record.expires_at * 1000)


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._touch: Any = client.register_script(_TOUCH)
        self._update_auth: Any = client.register_script(_UPDATE_AUTH)

    def _key(self, digest: str) -> str:
        return f"{self._prefix}s:{digest}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}us:{user_id}"

    async def create(self, record: SessionRecord) -> None:
        key, user_key = self._key(record.digest), self._user_key(record.user_id)
        with translate_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=cast(Any, _fields(record)))
                pipe.pexpireat(key, _expire_ms(record))
                pipe.sadd(user_key, record.digest)
                pipe.pexpireat(user_key, math.ceil(record.absolute_expires_at * 1000), gt=True)
                pipe.pexpireat(user_key, math.ceil(record.absolute_expires_at * 1000), nx=True)
                await pipe.execute()

    async def get(self, digest: str) -> SessionRecord | None:
        with translate_errors():
            fields = cast(dict[str, str], await self._redis.hgetall(self._key(digest)))
        if not fields or "user_id" not in fields:
            return None
        return _record(digest, fields)

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        record = await self.get(digest)
        if record is None:
            return
        expires_ms = math.ceil(min(idle_expires_at, record.absolute_expires_at) * 1000)
        with translate_errors():
            await self._touch(
                keys=[self._key(digest)], args=[repr(last_seen_at), repr(idle_expires_at), expires_ms]
            )

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        with translate_errors():
            updated = await self._update_auth(
                keys=[self._key(digest)], args=[repr(auth_time), aal.value, ",".join(amr)]
            )
        return bool(updated)

    async def delete(self, digest: str) -> bool:
        key = self._key(digest)
        with translate_errors():
            user_id = cast(str | None, await self._redis.hget(key, "user_id"))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if user_id:
                    pipe.srem(self._user_key(user_id), digest)
                deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        user_key = self._user_key(user_id)
        with translate_errors():
            members = cast(set[str], await self._redis.smembers(user_key))
            digests = [d for d in members if d != except_digest]
            if not digests:
                return 0
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*[self._key(d) for d in digests])
                pipe.srem(user_key, *digests)
                deleted, _ = await pipe.execute()
        return int(deleted)

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        user_key = self._user_key(user_id)
        with translate_errors():
            digests = sorted(cast(set[str], await self._redis.smembers(user_key)))
            if not digests:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for d in digests:
                    pipe.hgetall(self._key(d))
                results: list[dict[str, str]] = await pipe.execute()
            gone = [d for d, fields in zip(digests, results, strict=True) if not fields]
            if gone:
                await self._redis.srem(user_key, *gone)
        return [_record(d, fields) for d, fields in zip(digests, results, strict=True) if fields]


class RedisRateLimitStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, key: str, window: int, now: float) -> tuple[str, int, int]:
        start = int(now // window) * window
        return f"{self._prefix}rl:{key}:{start}", start + window, max(1, math.ceil(start + window - now))

    async def get(self, key: str, *, window: int, now: float) -> WindowCount:
        redis_key, _, retry_after = self._key(key, window, now)
        with translate_errors():
            value = await self._redis.get(redis_key)
        return WindowCount(count=int(value or 0), retry_after=retry_after)

    async def increment(self, key: str, *, window: int, now: float) -> WindowCount:
        redis_key, ends_at, retry_after = self._key(key, window, now)
        with translate_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(redis_key)
                pipe.expireat(redis_key, ends_at + 1)
                count, _ = await pipe.execute()
        return WindowCount(count=int(count), retry_after=retry_after)

    async def reset(self, key: str, *, window: int, now: float) -> None:
        redis_key, _, _ = self._key(key, window, now)
        with translate_errors():
            await self._redis.delete(redis_key)


class RedisMarkStore:
    """Single-use marks as keys that expire on their own (SET NX PXAT)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    async def add(self, key: str, *, expires_at: float) -> bool:
        with translate_errors():
            result = await self._redis.set(
                f"{self._prefix}m:{key}", "1", nx=True, pxat=math.ceil(expires_at * 1000)
            )
        return bool(result)

    async def exists(self, key: str, *, now: float) -> bool:
        with translate_errors():
            return bool(await self._redis.exists(f"{self._prefix}m:{key}"))


class RedisEphemeralStore:
    """Short-lived values with their own expiry; GETDEL makes `take` single-use across processes."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}e:{key}"

    async def put(self, key: str, value: str, *, expires_at: float) -> None:
        with translate_errors():
            await self._redis.set(self._key(key), value, pxat=math.ceil(expires_at * 1000))

    async def get(self, key: str, *, now: float) -> str | None:
        with translate_errors():
            return cast(str | None, await self._redis.get(self._key(key)))

    async def take(self, key: str, *, now: float) -> str | None:
        with translate_errors():
            return cast(str | None, await self._redis.getdel(self._key(key)))

    async def delete(self, key: str) -> None:
        with translate_errors():
            await self._redis.delete(self._key(key))
