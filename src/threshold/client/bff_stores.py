"""Where the backend-for-frontend keeps its sessions and pending sign-ins.

- MemorySessionStore: this process only (one worker); everything ends when it stops.
- RedisSessionStore: shared by every BFF process through Redis (`threshold-bff --redis URL`).
- SqlSessionStore: shared through PostgreSQL or SQLite (`threshold-bff --database URL`), for a deployment
  that has a database and no Redis.

Keys are digests of the browser's values (its cookie, the sign-in's state), never the values. Every store
gives the same guarantees: a pending sign-in is taken once, a logout takes the session once (so one
caller revokes its tokens), a back-channel logout ends every session of a Threshold session (`sid`) or
person (`sub`), and `refreshing` lets one refresh run at a time per session across every process that
shares the store (a holder that dies is waited out for at most the lock's lifetime).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@dataclass(frozen=True, slots=True)
class BffSession:
    """What the BFF holds for one signed-in browser (never sent to it)."""

    sub: str
    sid: str | None
    claims: Mapping[str, Any]
    access_token: str
    access_expires_at: float
    refresh_token: str | None
    id_token: str
    created_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    nonce: str
    verifier: str
    return_to: str
    expires_at: float


class SessionStore(Protocol):
    """Where the BFF keeps sessions and pending sign-ins, keyed by digests of the browser's values."""

    async def get(self, key: str) -> BffSession | None: ...
    async def put(self, key: str, session: BffSession, *, ttl: float) -> None: ...
    async def replace(self, key: str, session: BffSession, *, ttl: float) -> bool:
        """Write the session only if it still exists (a refresh must not bring back a session that a
        logout or a back-channel logout ended while it ran); whether it was written."""
        ...

    async def delete(self, key: str) -> BffSession | None: ...
    async def delete_matching(self, *, sid: str | None, sub: str | None) -> int: ...
    async def put_login(self, key: str, login: PendingLogin) -> None: ...
    async def take_login(self, key: str) -> PendingLogin | None:
        """The pending sign-in, removed (single use)."""
        ...

    async def aclose(self) -> None:
        """Release connections (when the BFF stops)."""
        ...

    def refreshing(self, key: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Held while the session's tokens are refreshed: one refresh at a time per session, across
        every process that shares the store. It gives False when the lock could not be had within the
        lock's lifetime (a holder still at work, or one that died): the caller must not refresh then."""
        ...


class MemorySessionStore:
    """Sessions in this process (one worker): they end when it stops."""

    def __init__(self, *, clock: Any = time.time) -> None:
        self._sessions: dict[str, tuple[BffSession, float]] = {}
        self._logins: dict[str, PendingLogin] = {}
        self._clock = clock
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def aclose(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def refreshing(self, key: str) -> AsyncIterator[bool]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield True

    async def get(self, key: str) -> BffSession | None:
        found = self._sessions.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._sessions[key]
            return None
        return found[0]

    async def put(self, key: str, session: BffSession, *, ttl: float) -> None:
        self._sessions[key] = (session, self._clock() + ttl)

    async def replace(self, key: str, session: BffSession, *, ttl: float) -> bool:
        if await self.get(key) is None:
            return False
        self._sessions[key] = (session, self._clock() + ttl)
        return True

    async def delete(self, key: str) -> BffSession | None:
        found = self._sessions.pop(key, None)
        return found[0] if found else None

    async def delete_matching(self, *, sid: str | None, sub: str | None) -> int:
        doomed = [
            k
            for k, (s, _) in self._sessions.items()
            if (sid is not None and s.sid == sid) or (sid is None and sub is not None and s.sub == sub)
        ]
        for key in doomed:
            del self._sessions[key]
        return len(doomed)

    async def put_login(self, key: str, login: PendingLogin) -> None:
        now = self._clock()
        for stale in [k for k, v in self._logins.items() if v.expires_at <= now]:
            del self._logins[stale]
        self._logins[key] = login

    async def take_login(self, key: str) -> PendingLogin | None:
        login = self._logins.pop(key, None)
        return login if login is not None and login.expires_at > self._clock() else None


class RedisSessionStore:
    """Sessions in Redis, shared by every BFF process (`redis://...`): a session is one JSON string with
    the idle lifetime as its TTL, indexed by Threshold session id and subject for back-channel logout; a
    pending sign-in is taken with GETDEL (single use); a refresh holds a lock key (SET NX PX) that the
    other processes wait out."""

    def __init__(self, redis: Any, *, prefix: str = "threshold-bff:", lock_seconds: float = 10.0) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lock_ms = max(1, int(lock_seconds * 1000))

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "threshold-bff:", lock_seconds: float = 10.0
    ) -> RedisSessionStore:
        import redis.asyncio as aioredis

        return cls(aioredis.from_url(url, decode_responses=True), prefix=prefix, lock_seconds=lock_seconds)

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _k(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    async def get(self, key: str) -> BffSession | None:
        raw = await self._redis.get(self._k("s", key))
        return None if raw is None else session_from_json(raw)

    async def put(self, key: str, session: BffSession, *, ttl: float) -> None:
        seconds = max(1, math.ceil(ttl))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("s", key), session_to_json(session), ex=seconds)
            for kind, value in (("sid", session.sid), ("sub", session.sub)):
                if value:  # the newest session of an index lives longest: its TTL is the index's
                    pipe.sadd(self._k(kind, value), key)
                    pipe.expire(self._k(kind, value), seconds)
            await pipe.execute()

    async def replace(self, key: str, session: BffSession, *, ttl: float) -> bool:
        seconds = max(1, math.ceil(ttl))
        written = await self._redis.set(self._k("s", key), session_to_json(session), ex=seconds, xx=True)
        if not written:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            for kind, value in (("sid", session.sid), ("sub", session.sub)):
                if value:
                    pipe.expire(self._k(kind, value), seconds, gt=True)
            await pipe.execute()
        return True

    async def delete(self, key: str) -> BffSession | None:
        raw = await self._redis.getdel(self._k("s", key))  # one logout gets the tokens to revoke
        return None if raw is None else session_from_json(raw)

    async def delete_matching(self, *, sid: str | None, sub: str | None) -> int:
        index = self._k("sid", sid) if sid is not None else self._k("sub", sub) if sub is not None else None
        if index is None:
            return 0
        keys = list(await self._redis.smembers(index))
        if not keys:
            return 0
        ended = int(await self._redis.delete(*(self._k("s", k) for k in keys)))
        await self._redis.delete(index)
        return ended

    async def put_login(self, key: str, login: PendingLogin) -> None:
        ttl = max(1, math.ceil(login.expires_at - time.time()))
        await self._redis.set(self._k("l", key), login_to_json(login), ex=ttl)

    async def take_login(self, key: str) -> PendingLogin | None:
        raw = await self._redis.getdel(self._k("l", key))
        return None if raw is None else PendingLogin(**json.loads(raw))

    @contextlib.asynccontextmanager
    async def refreshing(self, key: str) -> AsyncIterator[bool]:
        name, token = self._k("r", key), secrets.token_hex(16)
        deadline = time.monotonic() + self._lock_ms / 1000 + 0.5  # past the lock's own expiry
        held = True
        while not await self._redis.set(name, token, nx=True, px=self._lock_ms):
            if time.monotonic() > deadline:
                held = False  # still held by another: the caller must not refresh
                break
            await asyncio.sleep(0.01)
        try:
            yield held
        finally:
            # release only our own lock (compare and delete in one step)
            await self._redis.eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
                "return 0",
                1,
                name,
                token,
            )


def session_to_json(session: BffSession) -> str:
    data = {f: getattr(session, f) for f in BffSession.__slots__}
    data["claims"] = dict(session.claims)
    return json.dumps(data)


def session_from_json(raw: str) -> BffSession:
    return BffSession(**json.loads(raw))


def login_to_json(login: PendingLogin) -> str:
    return json.dumps({f: getattr(login, f) for f in PendingLogin.__slots__})


class SqlSessionStore:
    """Sessions in PostgreSQL or SQLite (SQLAlchemy), shared by every BFF process that uses the database.

    Three tables of its own, made on first use (`threshold_bff_sessions`, `_logins`, `_locks`): a session
    row holds its JSON and when it expires (the idle lifetime, renewed by each write), indexed by
    Threshold session id and subject; a pending sign-in is taken by a DELETE ... RETURNING (single use);
    a refresh holds a lock row (an INSERT that only one process wins; an expired one is taken over).
    Expired rows are swept at most once a minute by a write.
    """

    SWEEP_EVERY = 60.0

    def __init__(self, engine: AsyncEngine, *, lock_seconds: float = 10.0, clock: Any = time.time) -> None:
        self._engine = engine
        self._lock_seconds = lock_seconds
        self._clock = clock
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._swept = 0.0
        metadata = sa.MetaData()
        self._sessions = sa.Table(
            "threshold_bff_sessions",
            metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("sub", sa.String(255), nullable=False, index=True),
            sa.Column("sid", sa.String(255), nullable=True, index=True),
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
        self._logins = sa.Table(
            "threshold_bff_logins",
            metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
        self._locks = sa.Table(
            "threshold_bff_locks",
            metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("owner", sa.String(32), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
        self._metadata = metadata

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqlSessionStore:
        """`postgresql://user@host/db` or `sqlite:///path/bff.db` (the async drivers are chosen here)."""
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                url = driver + url[len(plain) :]
        if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("the BFF's database must be a postgresql:// or sqlite:// URL")
        engine = create_async_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):

            @sa.event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(connection: Any, _record: Any) -> None:
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")  # processes read while one writes
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.close()

        return cls(engine, **options)

    async def aclose(self) -> None:
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[Any]:
        if not self._ready:
            async with self._ready_lock:
                if not self._ready:
                    try:
                        async with self._engine.begin() as connection:
                            await connection.run_sync(self._metadata.create_all)
                    except sa.exc.DBAPIError:  # another process made them at the same moment
                        async with self._engine.begin() as connection:
                            await connection.run_sync(self._metadata.create_all)
                    self._ready = True
        async with self._engine.begin() as connection:
            yield connection

    def _insert(self, table: sa.Table) -> Any:
        """INSERT with ON CONFLICT (both dialects spell it the same way in SQLAlchemy)."""
        return (postgresql if self._engine.dialect.name == "postgresql" else sqlite).insert(table)

    async def get(self, key: str) -> BffSession | None:
        table = self._sessions
        async with self._begin() as connection:
            raw = await connection.scalar(
                sa.select(table.c.data).where(table.c.key == key, table.c.expires_at > self._clock())
            )
        return None if raw is None else session_from_json(raw)

    async def put(self, key: str, session: BffSession, *, ttl: float) -> None:
        table, now = self._sessions, self._clock()
        values = {
            "sub": session.sub,
            "sid": session.sid,
            "data": session_to_json(session),
            "expires_at": now + ttl,
        }
        statement = self._insert(table).values(key=key, **values)
        async with self._begin() as connection:
            await connection.execute(
                statement.on_conflict_do_update(index_elements=[table.c.key], set_=values)
            )
            await self._sweep(connection, now)

    async def replace(self, key: str, session: BffSession, *, ttl: float) -> bool:
        table, now = self._sessions, self._clock()
        async with self._begin() as connection:
            written = await connection.execute(
                sa.update(table)
                .where(table.c.key == key, table.c.expires_at > now)
                .values(data=session_to_json(session), expires_at=now + ttl)
            )
        return bool(written.rowcount)

    async def delete(self, key: str) -> BffSession | None:
        table = self._sessions
        async with self._begin() as connection:
            raw = await connection.scalar(
                sa.delete(table)
                .where(table.c.key == key, table.c.expires_at > self._clock())
                .returning(table.c.data)
            )
            await connection.execute(sa.delete(table).where(table.c.key == key))  # an expired one too
        return None if raw is None else session_from_json(raw)

    async def delete_matching(self, *, sid: str | None, sub: str | None) -> int:
        table = self._sessions
        if sid is not None:
            condition = table.c.sid == sid
        elif sub is not None:
            condition = table.c.sub == sub
        else:
            return 0
        async with self._begin() as connection:
            ended = await connection.execute(
                sa.delete(table).where(condition, table.c.expires_at > self._clock())
            )
        return int(ended.rowcount)

    async def put_login(self, key: str, login: PendingLogin) -> None:
        async with self._begin() as connection:
            await connection.execute(
                self._insert(self._logins).values(
                    key=key, data=login_to_json(login), expires_at=login.expires_at
                )
            )
            await self._sweep(connection, self._clock())

    async def take_login(self, key: str) -> PendingLogin | None:
        table = self._logins
        async with self._begin() as connection:
            raw = await connection.scalar(sa.delete(table).where(table.c.key == key).returning(table.c.data))
        if raw is None:
            return None
        login = PendingLogin(**json.loads(raw))
        return login if login.expires_at > self._clock() else None

    async def _sweep(self, connection: Any, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        for table in (self._sessions, self._logins, self._locks):
            await connection.execute(sa.delete(table).where(table.c.expires_at <= now))

    @contextlib.asynccontextmanager
    async def refreshing(self, key: str) -> AsyncIterator[bool]:
        table, owner = self._locks, secrets.token_hex(16)
        deadline = time.monotonic() + self._lock_seconds + 0.5  # past the lock's own expiry
        while True:
            now = self._clock()
            async with self._begin() as connection:
                expired = sa.delete(table).where(table.c.key == key, table.c.expires_at <= now)
                await connection.execute(expired)
                taken = await connection.execute(
                    self._insert(table)
                    .values(key=key, owner=owner, expires_at=now + self._lock_seconds)
                    .on_conflict_do_nothing(index_elements=[table.c.key])
                )
            held = taken.rowcount == 1
            if held or time.monotonic() > deadline:
                break  # not held past the deadline: another is still at it; the caller must not refresh
            await asyncio.sleep(0.02)
        try:
            yield held
        finally:
            if held:
                async with self._begin() as connection:
                    await connection.execute(
                        sa.delete(table).where(table.c.key == key, table.c.owner == owner)
                    )
