"""Adapters against real storage: a migrated SQLite file, the shared PostgreSQL database, Redis."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import sqlite_template
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.adapters.sql.db import create_engine
from threshold.adapters.sql.schema import metadata
from threshold.settings import Settings

SQL_BACKENDS = ("sqlite", "postgres")


def asyncpg_url(url: str) -> str:
    return Settings(database_url=url).effective_database_url


async def empty_pg_tables(engine: AsyncEngine) -> None:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    async with engine.begin() as conn:
        # audit_events refuses DELETE (append-only trigger); TRUNCATE is the test-only way to empty it.
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))


def migrated_sql_url(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A SQLite file of this test's own, or the shared PostgreSQL database.

    Sync on purpose: the shared fixtures migrate with asyncio.run, which a running loop forbids.
    """
    if kind == "sqlite":
        db = tmp_path / "threshold.db"
        shutil.copy(sqlite_template(tmp_path_factory), db)
        return f"sqlite+aiosqlite:///{db}"
    return asyncpg_url(request.getfixturevalue("pg_url"))


async def open_engine(url: str) -> AsyncEngine:
    """An engine on a migrated database; the shared PostgreSQL one is emptied first."""
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        await empty_pg_tables(engine)
    return engine


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sql_url(request.param, request, tmp_path, tmp_path_factory)


@pytest.fixture
async def sql_engine(sql_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database: a SQLite file of this test's own, or the shared PostgreSQL one emptied."""
    engine = await open_engine(sql_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_connect(redis_url)
    yield client
    await client.aclose()
