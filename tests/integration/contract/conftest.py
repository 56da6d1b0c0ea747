"""Every implementation of a storage port, behind one fixture per port, so that one set of assertions
holds for all of them (the test id names the implementation):

    UserRepo           sqlite, postgres (SQLAlchemy), postgres-asyncpg, sqlite-fast (the fast runners)
    SessionStore       sqlite, postgres, postgres-asyncpg, sqlite-fast, redis
    RateLimitStore     sqlite, postgres, postgres-asyncpg, sqlite-fast, redis
    EphemeralStore     sqlite, postgres, redis (and the fast kinds, which run them as sqlite, postgres)
    MarkStore          sqlite, postgres, redis (likewise)
    RefreshTokenRepo   sqlite, postgres, postgres-asyncpg, sqlite-fast

SQL implementations get a migrated database of the test's own (the shared PostgreSQL one emptied); Redis
ones a key prefix of the test's own. `add_user` stores a user where the implementation keeps a foreign
key to users (SQL); for Redis it only makes the record.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration import records
from tests.integration.conftest import migrated_sql_url, open_engine
from threshold.adapters.redis.stores import (
    RedisEphemeralStore,
    RedisMarkStore,
    RedisRateLimitStore,
    RedisSessionStore,
)
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.adapters.sql.db import Runner, Statements, UnitAwareStatements
from threshold.adapters.sql.factor_repos import SqlEphemeralStore
from threshold.adapters.sql.oidc_repos import SqlMarkStore, SqlRefreshTokenRepo
from threshold.adapters.sql.pg_fast import FastPool, PgRefreshTokenRepo
from threshold.adapters.sql.repos import SqlRateLimitStore, SqlSessionStore, SqlUserRepo
from threshold.adapters.sql.sqlite_fast import SqliteRunner
from threshold.core.models import User
from threshold.core.ports import EphemeralStore, RateLimitStore, SessionStore, UserRepo
from threshold.oidc.ports import MarkStore, RefreshTokenRepo

SQL = ("sqlite", "postgres")
SQL_AND_FAST = (*SQL, "postgres-asyncpg", "sqlite-fast")
FAST = {"postgres-asyncpg": "postgres", "sqlite-fast": "sqlite"}
"""Each fast runner's kind, and the database it runs on (db.Runner: pg_fast, sqlite_fast)."""
SQL_FAST_AND_REDIS = (*SQL_AND_FAST, "redis")

AddUser = Callable[..., Awaitable[User]]


@dataclass(frozen=True)
class Place:
    """Where an implementation keeps its data: a SQL database (url) or a Redis prefix."""

    kind: str
    url: str = ""
    prefix: str = ""


@dataclass(frozen=True)
class Storage:
    """A place, opened."""

    kind: str
    engine: AsyncEngine | None = None
    pool: Runner | None = None
    """The fast runner the service would use (the "-asyncpg" and "-fast" kinds), else None."""
    redis: Any = None  # redis.asyncio.Redis
    prefix: str = ""


def _place(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Place:
    """Sync (see migrated_sql_url): resolves the shared services before any event loop runs."""
    kind: str = request.param
    if kind == "redis":
        return Place(
            kind, url=request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
        )
    database = FAST.get(kind, kind)
    return Place(kind, url=migrated_sql_url(database, request, tmp_path, tmp_path_factory))


@contextlib.asynccontextmanager
async def _opened(place: Place) -> AsyncIterator[Storage]:
    if place.kind == "redis":
        client = redis_connect(place.url)
        try:
            yield Storage(place.kind, redis=client, prefix=place.prefix)
        finally:
            await client.aclose()
        return
    engine = await open_engine(place.url)
    pool: Runner | None = None
    if place.kind == "postgres-asyncpg":
        pool = FastPool(place.url)
    elif place.kind == "sqlite-fast":
        assert engine.url.database
        pool = SqliteRunner(engine.url.database)
    try:
        yield Storage(place.kind, engine=engine, pool=pool)
    finally:
        if pool is not None:
            await pool.close()
        await engine.dispose()


@pytest.fixture(params=SQL_AND_FAST)
def user_repo_place(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Place:
    return _place(request, tmp_path, tmp_path_factory)


@pytest.fixture(params=SQL_FAST_AND_REDIS)
def store_place(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Place:
    return _place(request, tmp_path, tmp_path_factory)


@pytest.fixture(params=SQL_AND_FAST)
def refresh_repo_place(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Place:
    return _place(request, tmp_path, tmp_path_factory)


@pytest.fixture
async def user_storage(user_repo_place: Place) -> AsyncIterator[Storage]:
    async with _opened(user_repo_place) as storage:
        yield storage


@pytest.fixture
async def store_storage(store_place: Place) -> AsyncIterator[Storage]:
    async with _opened(store_place) as storage:
        yield storage


@pytest.fixture
async def refresh_storage(refresh_repo_place: Place) -> AsyncIterator[Storage]:
    async with _opened(refresh_repo_place) as storage:
        yield storage


# --- One fixture per port ------------------------------------------------------------------------------


def statements_of(storage: Storage) -> Statements | None:
    """Where a repository on this storage runs its single statements: the fast runner's on
    "postgres-asyncpg" and "sqlite-fast" (as the service wires it), else its engine."""
    assert storage.engine is not None
    return UnitAwareStatements(storage.engine, storage.pool) if storage.pool is not None else None


@pytest.fixture
def users(user_storage: Storage) -> UserRepo:
    assert user_storage.engine is not None
    return SqlUserRepo(user_storage.engine, statements=statements_of(user_storage))


@pytest.fixture
def sessions(store_storage: Storage) -> SessionStore:
    s = store_storage
    return (
        SqlSessionStore(s.engine, statements=statements_of(s))
        if s.engine
        else RedisSessionStore(s.redis, s.prefix)
    )


@pytest.fixture
def rate_limits(store_storage: Storage) -> RateLimitStore:
    s = store_storage
    if s.engine is None:
        return RedisRateLimitStore(s.redis, s.prefix)
    return SqlRateLimitStore(s.engine, statements=statements_of(s))


@pytest.fixture
def ephemeral(store_storage: Storage) -> EphemeralStore:
    s = store_storage
    return SqlEphemeralStore(s.engine) if s.engine else RedisEphemeralStore(s.redis, s.prefix)


@pytest.fixture
def marks(store_storage: Storage) -> MarkStore:
    s = store_storage
    return SqlMarkStore(s.engine) if s.engine else RedisMarkStore(s.redis, s.prefix)


@pytest.fixture
def refresh_tokens(refresh_storage: Storage) -> RefreshTokenRepo:
    assert refresh_storage.engine is not None
    if isinstance(refresh_storage.pool, FastPool):
        return PgRefreshTokenRepo(refresh_storage.engine, refresh_storage.pool)
    return SqlRefreshTokenRepo(refresh_storage.engine, statements=statements_of(refresh_storage))


# --- Users for the stores that refer to them ------------------------------------------------------------


def _user_adder(engine: AsyncEngine | None) -> AddUser:
    async def add(email: str | None = None) -> User:
        user = records.user(email)
        if engine is not None:
            await SqlUserRepo(engine).add(user, None)
        return user

    return add


@pytest.fixture
def add_user(store_storage: Storage) -> AddUser:
    """A new user, stored where the store has a foreign key to users (SQL); Redis needs none."""
    return _user_adder(store_storage.engine)


@pytest.fixture
def add_token_owner(refresh_storage: Storage) -> AddUser:
    return _user_adder(refresh_storage.engine)
