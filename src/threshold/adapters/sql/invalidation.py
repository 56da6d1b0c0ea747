"""Session-cache invalidation without Redis: PostgreSQL NOTIFY, or a change file beside SQLite.

PostgreSQL: `pg_notify` on a channel every process LISTENs to on a connection of its own (asyncpg).
The cache is on only while that connection hears this process's heartbeat, a notification it sends on
the channel every second (see adapters/feed_heartbeat.py): a connection that answers queries but is
not delivered notifications (behind a transaction-mode PgBouncer) keeps the cache off and empty.

SQLite lives on one host, so every process can see one small file: a revoking write appends a byte to
`<database>-invalidate`, and every session check first compares the file's (inode, size, mtime) with
what it saw last (one stat, no I/O wait); any change empties the cache. The file is replaced by a
fresh one when it grows past a limit, which changes the inode and so also counts as a change.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.feed_heartbeat import Heartbeat, Outages, Publish
from threshold.adapters.sql.db import translate_errors, writing
from threshold.core.errors import DependencyUnavailable
from threshold.core.session_cache import SessionCache

log = logging.getLogger(__name__)

MAX_CHANGE_FILE = 64 * 1024


def channel_name(prefix: str) -> str:
    return f"{prefix.rstrip(':')}_invalidate"


class PostgresInvalidations:
    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self._engine = engine
        self.channel = channel

    async def publish(self, message: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    text("SELECT pg_notify(:channel, :message)"),
                    {"channel": self.channel, "message": message},
                )


async def listen_postgres(
    database_url: str,
    channel: str,
    cache: SessionCache,
    *,
    publish: Publish,
    heartbeat: float = 1.0,
    retry_delay: float = 0.5,
) -> None:
    """LISTEN on a dedicated connection and feed `cache`; the cache is live only while the feed
    delivers: while this process's heartbeats, sent with `publish` (as every invalidation is), come
    back on that connection."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    outages = Outages()
    while True:
        conn: Any = None
        try:
            conn = await asyncpg.connect(dsn, timeout=3, server_settings={"application_name": channel})
            await _listen_on(conn, channel, cache, Heartbeat(publish, interval=heartbeat))
        except asyncio.CancelledError:
            raise
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
            DependencyUnavailable,
        ) as error:
            outages.note(error, cache)
        except Exception:
            log.exception("session cache off: invalidation listener failed")
        finally:
            cache.set_live(False)
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(retry_delay)


async def _listen_on(conn: Any, channel: str, cache: SessionCache, heartbeat: Heartbeat) -> None:
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())

    def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if not heartbeat.heard(payload):
            cache.apply(payload)

    await conn.add_listener(channel, deliver)
    await heartbeat.keep(cache, lost=lost)


class ChangeFile:
    """The SQLite invalidation feed: `publish` appends, `changed` is the per-check probe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True

    async def publish(self, message: str) -> None:
        self._append()

    def _append(self) -> None:
        try:
            if self.path.stat().st_size >= MAX_CHANGE_FILE:
                fresh = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                fresh.write_bytes(b"")
                os.replace(fresh, self.path)
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)


def change_file_for(database_url: str) -> Path | None:
    """The change file beside a SQLite database file; None for in-memory databases."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name(Path(url.database).name + "-invalidate")
