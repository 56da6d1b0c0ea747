"""Session store and rate-limit counters in Redis, shared by every process.

A session is one binary string at `{prefix}s:<SHA-256 digest>` that expires when the session does;
`{prefix}us:<user id>` is a small hash of the user's session keys (revoke-all and the session list
walk it); each distinct device (label and user agent) is stored once at `{prefix}ua:<reference>`. The
layout, and the previous text format still read, are in `_session_format`. Revocation deletes the
string (and announces it to every process's cache).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from threshold.adapters.redis import _session_format as fmt
from threshold.adapters.redis.packing import c_packed
from threshold.core.errors import DependencyUnavailable
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.ports import WindowCount


def connect(url: str) -> aioredis.Redis:
    """A client whose pooled connections survive a Redis restart: a command that meets a connection the
    restart closed is sent again on a fresh one (twice at most, 10 and 20 ms apart), so the first
    requests after Redis is back are not answered 503. A Redis that is down still fails fast (in about
    30 ms: a refused connection is tried three times; a timeout is not retried). The Retry is asyncio's:
    redis.retry.Retry, the synchronous one, is accepted by this client and never retries anything."""
    client = aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        retry=Retry(
            ExponentialBackoff(cap=0.05, base=0.005), retries=2, supported_errors=(RedisConnectionError,)
        ),
    )
    return c_packed(client)  # commands packed in C (packing)


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


# Every session script is given the session's key and the previous format's key (the same for a digest
# that is not SHA-256 hex) and acts on the one that exists, in the format its first byte says.
_FIND = """
local key, value = KEYS[1], redis.call('GET', KEYS[1])
if not value and KEYS[2] ~= KEYS[1] then key, value = KEYS[2], redis.call('GET', KEYS[2]) end
"""

_BINARY = """
local function binary(value) return (value:byte(1) or 0) >= 128 end
"""

_WIDTH = """
local WIDTH = {[0] = 0, [1] = 6, [2] = 8}
"""

# The device reference: bytes 2-10 of a binary value; the text before the first '|' of the previous format.
_DEVICE = (
    _BINARY
    + """
local function device(value)
  if binary(value) then return value:sub(3, 11) end
  local ref = string.match(value, '^([^|]*)|')
  if ref == '' then return nil end
  return ref
end
"""
)

# The session and its device, in one round trip.
_GET = (
    _DEVICE
    + _FIND
    + """
if not value then return false end
local ref = device(value)
local found = ''
if ref then found = redis.call('GET', ARGV[1] .. ref) or '' end
return {value, found}
"""
)

_LEGACY_FIELDS = "^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$"

# Only refresh a session that still exists: a revocation racing a last-seen update must win.
# ARGV: expiry (ms), touched bits, touched section, then last seen and idle expiry in the previous format.
_TOUCH = (
    _BINARY
    + _WIDTH
    + _FIND
    + """
if not value then return 0 end
if binary(value) then
  local first = value:byte(1)
  local old = WIDTH[bit.band(first, 3)] + WIDTH[bit.band(bit.rshift(first, 2), 3)]
  value = string.char(bit.bor(bit.band(first, 240), tonumber(ARGV[2]))) .. value:sub(2, 11) .. ARGV[3]
    .. value:sub(12 + old)
else
  local ref, _, _, auth, aal, amr, rest = string.match(value, '"""
    + _LEGACY_FIELDS
    + """')
  value = table.concat({ref, ARGV[4], ARGV[5], auth, aal, amr, rest}, '|')
end
redis.call('SET', key, value, 'PXAT', ARGV[1])
return 1
"""
)

# ARGV: step-up bits, step-up section, then auth time, aal and amr in the previous format.
_UPDATE_AUTH = (
    _BINARY
    + _WIDTH
    + _FIND
    + """
if not value then return 0 end
if binary(value) then
  local first = value:byte(1)
  local start = 12 + WIDTH[bit.band(first, 3)] + WIDTH[bit.band(bit.rshift(first, 2), 3)]
  local count = start + WIDTH[bit.band(bit.rshift(first, 4), 3)]
  value = string.char(bit.bor(bit.band(first, 143), tonumber(ARGV[1]))) .. value:sub(2, start - 1) .. ARGV[2]
    .. value:sub(count + 1 + value:byte(count))
else
  local ref, seen, idle, _, _, _, rest = string.match(value, '"""
    + _LEGACY_FIELDS
    + """')
  value = table.concat({ref, seen, idle, ARGV[3], ARGV[4], ARGV[5], rest}, '|')
end
redis.call('SET', key, value, 'KEEPTTL')
return 1
"""
)

# KEYS: the user's index and the previous format's index (the same for an id that is not 32 hex digits).
_EACH_INDEX = """
local indexes = {KEYS[1]}
if KEYS[2] ~= KEYS[1] then indexes[2] = KEYS[2] end
"""

# The user's live sessions with their devices ({key part, value, device, ...}), forgetting the ended.
_LIST = (
    _DEVICE
    + _EACH_INDEX
    + """
local out, devices = {}, {}
for _, index in ipairs(indexes) do
  for _, part in ipairs(redis.call('HKEYS', index)) do
    local value = redis.call('GET', ARGV[1] .. 's:' .. part)
    if value then
      local ref = device(value)
      local found = ''
      if ref then
        found = devices[ref]
        if found == nil then
          found = redis.call('GET', ARGV[1] .. 'ua:' .. ref) or ''
          devices[ref] = found
        end
      end
      out[#out + 1] = part
      out[#out + 1] = value
      out[#out + 1] = found
    else
      redis.call('HDEL', index, part)
    end
  end
end
return out
"""
)

# Revoke-all in one round trip: every session in the user's index but the kept one (ARGV[2] or ARGV[3],
# its key part in either format), and its entry.
_DELETE_ALL = (
    _EACH_INDEX
    + """
local deleted = 0
for _, index in ipairs(indexes) do
  for _, part in ipairs(redis.call('HKEYS', index)) do
    if part ~= ARGV[2] and part ~= ARGV[3] then
      deleted = deleted + redis.call('DEL', ARGV[1] .. 's:' .. part)
      redis.call('HDEL', index, part)
    end
  end
end
return deleted
"""
)


# A new session in one round trip (a script runs whole, as MULTI/EXEC would, at a fraction of the
# client's CPU: one reply to parse, not eight). Its device is kept as long as the longest session that
# uses it, the user's index as long as the user's longest session (GT moves an expiry later only; NX
# gives the index its first one). KEYS: device, session, index. ARGV: device value, absolute expiry (ms),
# session value, session expiry (ms), the session's key part.
_CREATE = """
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[4])
redis.call('HSET', KEYS[3], ARGV[5], '')
redis.call('PEXPIREAT', KEYS[3], ARGV[2], 'GT')
redis.call('PEXPIREAT', KEYS[3], ARGV[2], 'NX')
return 1
"""


def _expire_ms(record: SessionRecord) -> int:
    return math.ceil(record.expires_at * 1000)


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._raw_prefix = prefix.encode()
        self._get: Any = client.register_script(_GET)
        self._list: Any = client.register_script(_LIST)
        self._touch: Any = client.register_script(_TOUCH)
        self._update_auth: Any = client.register_script(_UPDATE_AUTH)
        self._delete_all: Any = client.register_script(_DELETE_ALL)
        self._create_one: Any = client.register_script(_CREATE)

    def _keys(self, digest: str) -> tuple[bytes, str]:
        """The session's key, and the key the previous format kept it at."""
        return self._raw_prefix + b"s:" + fmt.session_key_part(
            digest
        ), f"{self._prefix}s:{fmt.legacy_short(digest)}"

    def _indexes(self, user_id: str) -> tuple[bytes, str]:
        return self._raw_prefix + b"us:" + fmt.user_key_part(
            user_id
        ), f"{self._prefix}us:{fmt.legacy_id(user_id)}"

    async def _binary_script(
        self, script: Any, keys: Sequence[bytes | str], args: Sequence[bytes | str]
    ) -> Any:
        """A script whose answer holds binary values: read undecoded, whatever the client decodes."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        undecoded: dict[str, Any] = {NEVER_DECODE: []}
        try:
            return await self._redis.execute_command(*command, **undecoded)  # type: ignore[no-untyped-call]
        except NoScriptError:
            await self._redis.script_load(script.script)
            return await self._redis.execute_command(*command, **undecoded)  # type: ignore[no-untyped-call]

    def _creation(self, record: SessionRecord) -> tuple[list[bytes], list[bytes | int]]:
        """The keys and arguments of `_CREATE` for this session."""
        prefix = self._raw_prefix
        value, ref, device = fmt.encode(record)
        part = fmt.session_key_part(record.digest)
        keys = [
            prefix + b"ua:" + ref,
            prefix + b"s:" + part,
            prefix + b"us:" + fmt.user_key_part(record.user_id),
        ]
        return keys, [device, math.ceil(record.absolute_expires_at * 1000), value, _expire_ms(record), part]

    async def create(self, record: SessionRecord) -> None:
        keys, args = self._creation(record)
        with translate_errors():
            await self._create_one(keys=keys, args=args)

    async def create_many(self, records: Sequence[SessionRecord]) -> None:
        """Bulk import (each session on its own, not all-or-nothing): one round trip per call."""
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for record in records:
                    keys, args = self._creation(record)
                    await self._create_one(keys=keys, args=args, client=pipe)
                await pipe.execute()

    async def get(self, digest: str) -> SessionRecord | None:
        with translate_errors():
            found = await self._binary_script(self._get, self._keys(digest), [self._raw_prefix + b"ua:"])
        if not found:
            return None
        value, device = cast(list[bytes], found)
        return fmt.decode(digest, value, device)

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        record = await self.get(digest)
        if record is None:
            return
        expires_ms = math.ceil(min(idle_expires_at, record.absolute_expires_at) * 1000)
        bits, section = fmt.touched(
            record.created_at, last_seen_at=last_seen_at, idle_expires_at=idle_expires_at
        )
        legacy = (fmt.legacy_time(last_seen_at), fmt.legacy_time(idle_expires_at))
        with translate_errors():
            await self._touch(keys=self._keys(digest), args=[expires_ms, bits, section, *legacy])

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        bits, section = fmt.stepped_up(auth_time=auth_time, aal=aal, amr=tuple(amr))
        legacy = (fmt.legacy_time(auth_time), aal.value, ",".join(amr))
        with translate_errors():
            updated = await self._update_auth(keys=self._keys(digest), args=[bits, section, *legacy])
        return bool(updated)

    async def delete(self, digest: str) -> bool:
        record = await self.get(digest)
        key, legacy_key = self._keys(digest)
        with translate_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key, legacy_key)  # one of them at most (DEL counts a key named twice once)
                if record is not None:
                    index, legacy_index = self._indexes(record.user_id)
                    pipe.hdel(index, fmt.session_key_part(digest))
                    pipe.hdel(legacy_index, fmt.legacy_short(digest))
                deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        keep = (
            (fmt.session_key_part(except_digest), fmt.legacy_short(except_digest))
            if except_digest is not None
            else (b"", b"")
        )
        with translate_errors():
            deleted = await self._delete_all(keys=self._indexes(user_id), args=[self._raw_prefix, *keep])
        return int(deleted)

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        with translate_errors():
            found = cast(
                list[bytes], await self._binary_script(self._list, self._indexes(user_id), [self._raw_prefix])
            )
        sessions = [
            (fmt.digest_of(part), value, device)
            for part, value, device in zip(found[0::3], found[1::3], found[2::3], strict=True)
        ]
        return [fmt.decode(digest, value, device) for digest, value, device in sorted(sessions)]


# One attempt counted against every budget at once, each counter expiring a second after its window
# (one round trip, atomic as MULTI/EXEC). KEYS: the counters. ARGV: each one's expiry (Unix seconds).
_INCREMENT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  redis.call('EXPIREAT', key, ARGV[i])
end
return counts
"""

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


def _glob_escape(text: str) -> str:
    """`text` matched literally in a Redis glob pattern."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class RedisRateLimitStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._settle: Any = client.register_script(_SETTLE)
        self._increment: Any = client.register_script(_INCREMENT)

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
            results = await self._increment(
                keys=[redis_key for redis_key, _, _ in keys], args=[ends_at + 1 for _, ends_at, _ in keys]
            )
        return [
            WindowCount(count=int(count), retry_after=retry_after)
            for count, (_, _, retry_after) in zip(results, keys, strict=True)
        ]

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        if not refund and not reset:
            return
        keys = [self._key(key, window, now)[0] for key, window in [*refund, *reset]]
        with translate_errors():
            await self._settle(keys=keys, args=[len(refund)])

    async def forget(self, fragment: str) -> None:
        # SCAN walks the keyspace: fine for an erasure (rare, in the sweeper), never on a request
        pattern = f"{_glob_escape(self._prefix)}rl:*{_glob_escape(fragment)}*"
        with translate_errors():
            batch: list[Any] = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                await self._redis.unlink(*batch)


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
