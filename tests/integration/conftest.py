"""Adapters against real storage: a migrated SQLite file, the shared PostgreSQL database, Redis."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import sqlite_template
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.adapters.sql.db import create_engine
from threshold.adapters.sql.repos import SqlUserRepo
from threshold.core.models import User
from threshold.core.secrets import new_id
from threshold.settings import Settings

SQL_BACKENDS = ("sqlite", "postgres")
STORE_BACKENDS = ("sqlite", "postgres", "redis")

AddUser = Callable[..., Awaitable[User]]


def asyncpg_url(url: str) -> str:
    return Settings(database_url=url).effective_database_url


async def empty_pg_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        # audit_events refuses DELETE (append-only trigger); TRUNCATE is the test-only way to empty it.
        await conn.execute(
            text(
                "TRUNCATE users, password_credentials, login_networks, sessions, rate_limits, "
                "audit_events CASCADE"
            )
        )


def _sql_url(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Sync on purpose: the shared fixtures migrate with asyncio.run, which a running loop forbids."""
    if kind == "sqlite":
        db = tmp_path / "threshold.db"
        shutil.copy(sqlite_template(tmp_path_factory), db)
        return f"sqlite+aiosqlite:///{db}"
    return asyncpg_url(request.getfixturevalue("pg_url"))


async def _engine(url: str) -> AsyncEngine:
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        await empty_pg_tables(engine)
    return engine


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sql_url(request.param, request, tmp_path, tmp_path_factory)


@pytest.fixture
async def sql_engine(sql_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database: a SQLite file of this test's own, or the shared PostgreSQL one emptied."""
    engine = await _engine(sql_url)
    yield engine
    await engine.dispose()


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def store_url(
    store_backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str | None:
    if store_backend == "redis":
        request.getfixturevalue("redis_url")
        return None
    return _sql_url(store_backend, request, tmp_path, tmp_path_factory)


@pytest.fixture
async def store_engine(store_url: str | None) -> AsyncIterator[AsyncEngine | None]:
    """The SQL engine behind a SQL store (None for Redis)."""
    if store_url is None:
        yield None
        return
    engine = await _engine(store_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def add_user(store_engine: AsyncEngine | None) -> AddUser:
    """Create a user row where the store has a foreign key to users (SQL); Redis needs none."""

    async def add(email: str | None = None) -> User:
        user_id = new_id()
        address = email or f"{user_id}@example.com"
        user = User(
            id=user_id,
            email=address,
            email_normalized=address.casefold(),
            email_verified=False,
            disabled=False,
            created_at=time.time(),
        )
        if store_engine is not None:
            await SqlUserRepo(store_engine).add(user, None)
        return user

    return add
