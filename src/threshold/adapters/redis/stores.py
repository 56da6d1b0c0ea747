"""Session store and rate-limit counters in Redis, shared by every process.

A session is one string at `{prefix}s:<digest>` (the SHA-256 digest in URL-safe base64) that expires
when the session does; `{prefix}us:<user id>` is a small hash of the user's session digests. The value
is compact (about 150 bytes):

    <user-agent ref>|<last seen>|<idle expiry>|<auth time>|<aal>|<amr>|<created>|<absolute expiry>|
    <public id>|<user id>|<ip>|<device label>

Times (IEEE-754 doubles) and identifiers are base64. The mutable fields lead, so the Lua scripts
that touch a session or record a step-up rewrite them and keep the rest verbatim. User agents repeat
across sessions, so each distinct one is stored once at `{prefix}ua:<ref>` and outlives every session
that points at it. Revocation deletes the string (and announces it to every process's cache).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import struct
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from threshold.core.errors import DependencyUnavailable
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.ports import WindowCount


def connect(url: str) -> aioredis.Redis:
    """A client whose pooled connections survive a Redis restart: a command that meets a connection the
    restart closed is sent again on a fresh one (twice at most, a few milliseconds apart), so the first
    requests after Redis is back are not answered 503. A Redis that is down still fails fast (refused
    connections are not waited for, and a timeout is not retried)."""
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        retry=Retry(
            ExponentialBackoff(cap=0.05, base=0.005), retries=2, supported_errors=(RedisConnectionError,)
        ),
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


_FIELDS = "^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$"

# The session and the user agent it points at, in one round trip.
_GET = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
local ref = string.match(value, '^([^|]*)|')
local agent = ''
if ref and ref ~= '' then agent = redis.call('GET', ARGV[1] .. ref) or '' end
return {value, agent}
"""

# Only refresh a session that still exists: a revocation racing a last-seen update must win.
_TOUCH = (
    """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ref, _, _, auth, aal, amr, rest = string.match(value, '"""
    + _FIELDS
    + """')
redis.call('SET', KEYS[1], table.concat({ref, ARGV[1], ARGV[2], auth, aal, amr, rest}, '|'), 'PXAT', ARGV[3])
return 1
"""
)

_UPDATE_AUTH = (
    """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ref, seen, idle, _, _, _, rest = string.match(value, '"""
    + _FIELDS
    + """')
redis.call('SET', KEYS[1], table.concat({ref, seen, idle, ARGV[1], ARGV[2], ARGV[3], rest}, '|'), 'KEEPTTL')
return 1
"""
)


def _short(digest: str) -> str:
    """The hex SHA-256 digest in URL-safe base64: 43 characters instead of 64 in every key."""
    if len(digest) == 64:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + digest


def _long(short: str) -> str:
    return short[1:] if short.startswith("=") else base64.urlsafe_b64decode(short + "=").hex()


def _id(value: str) -> str:
    """A 32-hex-digit identifier as 22 base64 characters; anything else kept as is, marked with '='."""
    if len(value) == 32:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(value)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + value


def _unid(value: str) -> str:
    return value[1:] if value.startswith("=") else base64.urlsafe_b64decode(value + "==").hex()


def _time(at: float) -> str:
    """A timestamp as its 8 IEEE-754 bytes in base64: 11 characters, exact."""
    return base64.urlsafe_b64encode(struct.pack(">d", at)).rstrip(b"=").decode()


def _untime(text: str) -> float:
    value: float = struct.unpack(">d", base64.urlsafe_b64decode(text + "="))[0]
    return value


def _agent_ref(user_agent: str) -> str:
    if not user_agent:
        return ""
    return base64.urlsafe_b64encode(hashlib.sha256(user_agent.encode()).digest()[:9]).decode()


def _encode(record: SessionRecord) -> str:
    # The device label comes last: it is the one field that could hold a '|', and split() stops before it.
    return "|".join(
        (
            _agent_ref(record.user_agent),
            _time(record.last_seen_at),
            _time(record.idle_expires_at),
            _time(record.auth_time),
            record.aal.value,
            ",".join(record.amr),
            _time(record.created_at),
            _time(record.absolute_expires_at),
            _id(record.public_id),
            _id(record.user_id),
            record.ip.replace("|", ""),
            *_extras(record),
            record.device_label,
        )
    )


_EXTRAS = "~"
"""Marks the optional field of organization, connection and upstream assurance before the device label
(labels never start with it, so sessions written before the field existed still read)."""


def _clean(value: str) -> str:
    return "".join(ch for ch in value if ch not in "|;, ")[:200]


def _extras(record: SessionRecord) -> tuple[str, ...]:
    if not (record.org_id or record.connection_id or record.upstream_acr or record.upstream_amr):
        return ()
    fields = (
        record.org_id or "",
        record.connection_id or "",
        _clean(record.upstream_acr or ""),
        ",".join(_clean(a) for a in record.upstream_amr if _clean(a)),
    )
    return (_EXTRAS + ";".join(fields),)


def _decode(digest: str, value: str, user_agent: str) -> SessionRecord:
    (_, last_seen, idle, auth_time, aal, amr, created_at, absolute, public_id, user_id, ip, label) = (
        value.split("|", 11)
    )
    org_id = connection_id = upstream_acr = None
    upstream_amr: tuple[str, ...] = ()
    if label.startswith(_EXTRAS):
        extras, _, label = label.partition("|")
        org, connection, acr, up_amr = [*extras[len(_EXTRAS) :].split(";"), "", "", "", ""][:4]
        org_id, connection_id, upstream_acr = org or None, connection or None, acr or None
        upstream_amr = tuple(a for a in up_amr.split(",") if a)
    return SessionRecord(
        org_id=org_id,
        connection_id=connection_id,
        upstream_acr=upstream_acr,
        upstream_amr=upstream_amr,
        digest=digest,
        public_id=_unid(public_id),
        user_id=_unid(user_id),
        created_at=_untime(created_at),
        last_seen_at=_untime(last_seen),
        idle_expires_at=_untime(idle),
        absolute_expires_at=_untime(absolute),
        auth_time=_untime(auth_time),
        aal=Aal(aal),
        amr=tuple(Amr(value) for value in amr.split(",") if value),
        ip=ip,
        user_agent=user_agent,
        device_label=label,
    )


def _expire_ms(record: SessionRecord) -> int:
    return math.ceil(record.expires_at * 1000)


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._get: Any = client.register_script(_GET)
        self._touch: Any = client.register_script(_TOUCH)
        self._update_auth: Any = client.register_script(_UPDATE_AUTH)

    def _key(self, digest: str) -> str:
        return f"{self._prefix}s:{_short(digest)}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}us:{_id(user_id)}"

    async def create(self, record: SessionRecord) -> None:
        await self._create([record], transaction=True)

    async def create_many(self, records: Sequence[SessionRecord]) -> None:
        """Bulk import (each session on its own, not all-or-nothing): one round trip per call."""
        await self._create(records, transaction=False)

    async def _create(self, records: Sequence[SessionRecord], *, transaction: bool) -> None:
        with translate_errors():
            async with self._redis.pipeline(transaction=transaction) as pipe:
                for record in records:
                    absolute_ms = math.ceil(record.absolute_expires_at * 1000)
                    ref = _agent_ref(record.user_agent)
                    if ref:
                        agent_key = f"{self._prefix}ua:{ref}"
                        pipe.set(agent_key, record.user_agent, nx=True, pxat=absolute_ms)
                        pipe.pexpireat(agent_key, absolute_ms, gt=True)
                    pipe.set(self._key(record.digest), _encode(record), pxat=_expire_ms(record))
                    user_key = self._user_key(record.user_id)
                    pipe.hset(user_key, _short(record.digest), "")
                    pipe.pexpireat(user_key, absolute_ms, gt=True)
                    pipe.pexpireat(user_key, absolute_ms, nx=True)
                await pipe.execute()

    async def get(self, digest: str) -> SessionRecord | None:
        with translate_errors():
            found = await self._get(keys=[self._key(digest)], args=[f"{self._prefix}ua:"])
        if not found:
            return None
        value, user_agent = cast(list[str], found)
        return _decode(digest, value, user_agent)

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        record = await self.get(digest)
        if record is None:
            return
        expires_ms = math.ceil(min(idle_expires_at, record.absolute_expires_at) * 1000)
        with translate_errors():
            await self._touch(
                keys=[self._key(digest)], args=[_time(last_seen_at), _time(idle_expires_at), expires_ms]
            )

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        with translate_errors():
            updated = await self._update_auth(
                keys=[self._key(digest)], args=[_time(auth_time), aal.value, ",".join(amr)]
            )
        return bool(updated)

    async def delete(self, digest: str) -> bool:
        record = await self.get(digest)
        with translate_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(digest))
                if record is not None:
                    pipe.hdel(self._user_key(record.user_id), _short(digest))
                deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        user_key = self._user_key(user_id)
        keep = _short(except_digest) if except_digest is not None else None
        with translate_errors():
            members = cast(list[str], await self._redis.hkeys(user_key))
            shorts = [m for m in members if m != keep]
            if not shorts:
                return 0
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*[f"{self._prefix}s:{m}" for m in shorts])
                pipe.hdel(user_key, *shorts)
                deleted, _ = await pipe.execute()
        return int(deleted)

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        user_key = self._user_key(user_id)
        with translate_errors():
            shorts = sorted(cast(list[str], await self._redis.hkeys(user_key)))
            if not shorts:
                return []
            values = cast(list[str | None], await self._redis.mget([f"{self._prefix}s:{m}" for m in shorts]))
            gone = [short for short, value in zip(shorts, values, strict=True) if value is None]
            if gone:
                await self._redis.hdel(user_key, *gone)
            live = [(short, value) for short, value in zip(shorts, values, strict=True) if value is not None]
            refs = sorted({value.split("|", 1)[0] for _, value in live} - {""})
            agents: dict[str, str | None] = {}
            if refs:
                found = cast(
                    list[str | None], await self._redis.mget([f"{self._prefix}ua:{r}" for r in refs])
                )
                agents = dict(zip(refs, found, strict=True))
        return [
            _decode(_long(short), value, agents.get(value.split("|", 1)[0]) or "") for short, value in live
        ]


_SETTLE = """
-- KEYS: ARGV[1] counters to give one attempt back (never below zero), then counters to clear
local refunds = tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= refunds then
    local n = tonumber(redis.call('GET', KEYS[i]) or '0')
    if n > 0 then redis.call('DECR', KEYS[i]) end
  else
    redis.call('DEL', KEYS[i])
  end
end
return 0
"""


class RedisRateLimitStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._settle: Any = client.register_script(_SETTLE)

    def _key(self, key: str, window: int, now: float) -> tuple[str, int, int]:
        start = int(now // window) * window
        return f"{self._prefix}rl:{key}:{start}", start + window, max(1, math.ceil(start + window - now))

    async def get(self, key: str, *, window: int, now: float) -> WindowCount:
        redis_key, _, retry_after = self._key(key, window, now)
        with translate_errors():
            value = await self._redis.get(redis_key)
        return WindowCount(count=int(value or 0), retry_after=retry_after)

    async def increment(self, key: str, *, window: int, now: float) -> WindowCount:
        return (await self.increment_all([(key, window)], now=now))[0]

    async def increment_all(self, counters: Sequence[tuple[str, int]], *, now: float) -> list[WindowCount]:
        keys = [self._key(key, window, now) for key, window in counters]
        with translate_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                for redis_key, ends_at, _ in keys:
                    pipe.incr(redis_key)
                    pipe.expireat(redis_key, ends_at + 1)
                results = await pipe.execute()
        return [
            WindowCount(count=int(count), retry_after=retry_after)
            for count, (_, _, retry_after) in zip(results[::2], keys, strict=True)
        ]

    async def reset(self, key: str, *, window: int, now: float) -> None:
        await self.settle(reset=[(key, window)], now=now)

    async def refund(self, key: str, *, window: int, now: float) -> None:
        await self.settle(refund=[(key, window)], now=now)

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        if not refund and not reset:
            return
        keys = [self._key(key, window, now)[0] for key, window in [*refund, *reset]]
        with translate_errors():
            await self._settle(keys=keys, args=[len(refund)])


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

    async def add(self, key: str, value: str, *, expires_at: float, now: float) -> bool:
        with translate_errors():
            return bool(
                await self._redis.set(self._key(key), value, pxat=math.ceil(expires_at * 1000), nx=True)
            )

    async def delete(self, key: str) -> None:
        with translate_errors():
            await self._redis.delete(self._key(key))
