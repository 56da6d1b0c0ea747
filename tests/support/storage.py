"""Throwaway storage on the shared servers: a PostgreSQL database or a Redis key prefix of one's own,
and the THRESHOLD_* settings of each deployment the suites run (the backend)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from tests.support.environment import need, port_open

PG_HOST = os.environ.get("THRESHOLD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("THRESHOLD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("THRESHOLD_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("THRESHOLD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Backend = Literal["sqlite", "postgres", "postgres+redis"]
"""Embedded SQLite; PostgreSQL alone (sessions and limits in SQL); PostgreSQL with Redis."""


# --- PostgreSQL -------------------------------------------------------------------------------------


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database(tag: str = "test") -> str:
    """Create a fresh, empty database and return its URL (`need` PostgreSQL)."""
    if not port_open(PG_HOST, PG_PORT):
        need("PostgreSQL", f"nothing listens on {PG_HOST}:{PG_PORT}")
    name = f"threshold_{tag}_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis ------------------------------------------------------------------------------------------


def require_redis(url: str = REDIS_URL) -> str:
    """`url` when Redis answers there (otherwise `need` Redis)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        need("Redis", f"nothing answers at {url}: {exc}")
    finally:
        client.close()
    return url


def new_redis_prefix(tag: str = "thtest") -> str:
    return f"{tag}:{secrets.token_hex(4)}:"


def delete_redis_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every key under `prefix`; returns how many there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


# --- A backend's settings ---------------------------------------------------------------------------


@contextlib.contextmanager
def backend_env(backend: Backend, data_dir: Path, *, tag: str = "test") -> Iterator[dict[str, str]]:
    """THRESHOLD_* settings of a deployment on `backend` with storage of its own.

    SQLite is the default file in `data_dir`; PostgreSQL a new database, dropped on exit; Redis a key
    prefix of its own, emptied on exit.
    """
    values = {"THRESHOLD_DATA_DIR": str(data_dir)}
    if backend == "sqlite":
        yield values
        return
    if backend == "postgres+redis":
        require_redis()
    url = create_pg_database(tag)
    values["THRESHOLD_DATABASE_URL"] = url
    prefix = new_redis_prefix(tag) if backend == "postgres+redis" else None
    if prefix is not None:
        values["THRESHOLD_REDIS_URL"] = REDIS_URL
        values["THRESHOLD_REDIS_KEY_PREFIX"] = prefix
    try:
        yield values
    finally:
        drop_pg_database(url)
        if prefix is not None:
            delete_redis_prefix(prefix)
