"""Session-cache invalidation without Redis: PostgreSQL NOTIFY, or a change file beside SQLite.

PostgreSQL: `pg_notify` on a channel every process LISTENs to on a connection of its own (asyncpg).
A listening connection names itself after the channel (`application_name`) once its LISTEN is in
place, so that the publisher learns in the same statement (pg_stat_activity) which connections will be
delivered the message: their backends' process ids, which each listener puts in its acknowledgements
(core/session_cache.py `Acks`). By id, not by count: a listener that joins meanwhile, and acknowledges,
cannot stand in for a counted one that has not.
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

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.feed_heartbeat import INTERVAL, Feed, Heartbeat, Outages, Publish
from threshold.adapters.sql.db import translate_errors, writing
from threshold.core.errors import DependencyUnavailable
from threshold.core.session_cache import SessionCache

log = logging.getLogger(__name__)

MAX_CHANGE_FILE = 64 * 1024


def channel_name(prefix: str) -> str:
    return f"{prefix.rstrip(':')}_invalidate"


def listening_name(channel: str) -> str:
    """The `application_name` of a connection that LISTENs on `channel` (PostgreSQL keeps 63 bytes)."""
    return channel[:63]


def _starting_name(channel: str) -> str:
    return f"starting {channel}"[:63]


class PostgresInvalidations:
    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self._engine = engine
        self.channel = channel

    async def publish(self, message: str) -> frozenset[str]:
        with translate_errors():
            async with writing(self._engine) as conn:
                sent = await conn.execute(
                    text(
                        "SELECT pg_notify(:channel, :message), (SELECT array_agg(pid::text) "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = :listening)"
                    ),
                    {"channel": self.channel, "message": message, "listening": listening_name(self.channel)},
                )
                listeners = sent.one()[1]
        return frozenset(listeners or ())


async def listen_postgres(
    database_url: str,
    channel: str,
    cache: SessionCache,
    *,
    publish: Publish,
    heartbeat: float = INTERVAL,
    retry_delay: float = 0.5,
) -> None:
    """LISTEN on a dedicated connection and feed `cache`; the cache is live only while the feed
    delivers: while this process's heartbeats, sent with `publish` (as every invalidation is), come
    back on that connection."""
    import asyncpg  # here, not at the top: a process on SQLite never loads the driver

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    outages = Outages()
    while True:
        conn: Any = None
        try:
            conn = await asyncpg.connect(
                dsn, timeout=3, server_settings={"application_name": _starting_name(channel)}
            )
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

    # The connection runs one statement at a time: whatever acknowledgements are owed when it is free
    # go out together in one statement (one round trip for a burst, however slow the link).
    one_at_a_time, owed = asyncio.Lock(), list[str]()

    async def acknowledge(message: str) -> frozenset[str]:
        owed.append(message)
        async with one_at_a_time:
            if owed:  # else an earlier statement carried it
                batch = owed.copy()
                owed.clear()
                await conn.execute("SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m", channel, batch)
        return frozenset()

    feed = Feed(cache, heartbeat, me=str(conn.get_server_pid()), acknowledge=acknowledge)

    def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        feed.deliver(payload)

    await conn.add_listener(channel, deliver)
    async with one_at_a_time:  # an acknowledgement may already be owed
        await conn.execute("SELECT set_config('application_name', $1, false)", listening_name(channel))
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

    async def publish(self, message: str) -> int:
        """Appended before the revocation is answered; nobody listens (every check probes the file)."""
        self._append()
        return 0

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
