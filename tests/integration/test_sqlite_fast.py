"""The SQLite fast path's runner (adapters.sql.sqlite_fast.SqliteRunner): a connection is free again only
when its worker thread is done with it, even when the caller went away; a transaction that fails leaves
nothing written and no transaction open; a statement that finds every connection busy gets a 503 after a
bounded wait; after close, every statement (and every one waiting) is a 503, and nothing hangs."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select

from threshold.adapters.sql import sqlite_fast
from threshold.adapters.sql.db import SyncStatements, sqlite_pragmas
from threshold.adapters.sql.sqlite_fast import SqliteRunner
from threshold.core.errors import DependencyUnavailable

_NOTES = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("text", String))
_ADD = insert(_NOTES).values(id=bindparam("id"), text=bindparam("text"))
_ALL = select(_NOTES.c.id, _NOTES.c.text).order_by(_NOTES.c.id)
_ONE = select(_NOTES.c.text).where(_NOTES.c.id == bindparam("id"))


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "fast.db"
    with sqlite3.connect(path) as conn:
        sqlite_pragmas(conn)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR)")
    return path


def _writer(path: Path) -> sqlite3.Connection:
    """Another connection that takes the database's write lock and keeps it until it commits."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_a_cancelled_statement_still_completes_and_the_next_waits_for_it(database: Path) -> None:
    runner = SqliteRunner(str(database), size=1)
    try:
        await runner.execute(_ADD, {"id": 1, "text": "first"})
        lock = _writer(database)
        blocked = asyncio.create_task(runner.execute(_ADD, {"id": 2, "text": "second"}))
        await asyncio.sleep(0.2)  # its thread waits for the lock (SQLite's busy timeout)
        blocked.cancel()  # the request goes away; the thread cannot
        with pytest.raises(asyncio.CancelledError):
            await blocked
        reading = asyncio.create_task(runner.all(_ALL, {}))
        await asyncio.sleep(0.3)
        assert not reading.done()  # the one connection is still the blocked thread's: the read waits
        lock.execute("COMMIT")
        lock.close()
        rows = await asyncio.wait_for(reading, 5)
        # the thread finished the INSERT it had begun: a cancel stops the waiting, not the statement
        assert [(row["id"], row["text"]) for row in rows] == [(1, "first"), (2, "second")]
    finally:
        await runner.close()


async def test_a_write_after_a_cancelled_transaction_is_not_taken_into_it(database: Path) -> None:
    # The caller of a transaction goes away while its thread is between two statements. Had its
    # connection been handed on at the cancel, the next write would run on it inside that transaction and
    # be rolled back with it, after reporting success (two connections and two threads: the connection
    # last handed back is the next one taken).
    runner = SqliteRunner(str(database), size=2)
    between = threading.Event()

    def slow_then_fail(run: SyncStatements) -> None:
        run.execute(_ADD, {"id": 1, "text": "rolled back"})
        between.set()
        time.sleep(0.4)  # the thread between its statements (the connection's mutex free)
        raise RuntimeError("the work fails")

    try:
        transaction = asyncio.create_task(runner.transaction(slow_then_fail))
        while not between.is_set():
            await asyncio.sleep(0.01)
        transaction.cancel()
        with pytest.raises(asyncio.CancelledError):
            await transaction
        assert await runner.execute(_ADD, {"id": 2, "text": "kept"}) == 1
        with sqlite3.connect(database) as other:
            assert other.execute("SELECT id, text FROM notes").fetchall() == [(2, "kept")]
    finally:
        await runner.close()


async def test_a_failed_transaction_writes_nothing_and_leaves_no_transaction_open(database: Path) -> None:
    runner = SqliteRunner(str(database), size=1)

    def half_then_fail(run: SyncStatements) -> None:
        run.execute(_ADD, {"id": 1, "text": "half"})
        raise RuntimeError("the work fails after a write")

    def duplicate(run: SyncStatements) -> None:
        run.execute(_ADD, {"id": 2, "text": "kept?"})
        run.execute(_ADD, {"id": 2, "text": "twice"})  # the primary key again: IntegrityError

    try:
        with pytest.raises(RuntimeError):
            await runner.transaction(half_then_fail)
        with pytest.raises(sqlite3.IntegrityError):
            await runner.transaction(duplicate)
        assert await runner.all(_ALL, {}) == []
        # the same (only) connection commits what comes next: no transaction was left open on it
        assert await runner.execute(_ADD, {"id": 3, "text": "after"}) == 1
        with sqlite3.connect(database) as other:
            assert other.execute("SELECT id, text FROM notes").fetchall() == [(3, "after")]
        row = await runner.first(_ONE, {"id": 3})
        assert row is not None and row["text"] == "after"
    finally:
        await runner.close()


async def test_every_connection_busy_is_a_bounded_wait_then_503(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_fast, "ACQUIRE_TIMEOUT", 0.2)
    runner = SqliteRunner(str(database), size=1)
    lock = _writer(database)
    try:
        blocked = asyncio.create_task(runner.execute(_ADD, {"id": 1, "text": "waits"}))
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(DependencyUnavailable):
            await runner.first(_ONE, {"id": 1})
        assert 0.15 <= asyncio.get_running_loop().time() - started < 2
        lock.execute("COMMIT")
        assert await asyncio.wait_for(blocked, 5) == 1
        row = await runner.first(_ONE, {"id": 1})  # nothing lost for the requests after it
        assert row is not None and row["text"] == "waits"
    finally:
        lock.close()
        await runner.close()


async def test_after_close_every_statement_is_503_and_none_hangs(database: Path) -> None:
    runner = SqliteRunner(str(database), size=1)
    lock = _writer(database)
    try:
        blocked = asyncio.create_task(runner.execute(_ADD, {"id": 1, "text": "in flight"}))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(runner.first(_ONE, {"id": 1}))  # waits for the one connection
        await asyncio.sleep(0.05)
        await runner.close()
        with pytest.raises(DependencyUnavailable):
            await asyncio.wait_for(waiting, 2)
        with pytest.raises(DependencyUnavailable):
            await runner.first(_ONE, {"id": 1})
        lock.execute("COMMIT")
        assert await asyncio.wait_for(blocked, 5) == 1  # the statement in flight completes
    finally:
        lock.close()
