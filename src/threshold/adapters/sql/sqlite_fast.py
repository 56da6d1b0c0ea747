"""The single statements of a SQLite deployment on sqlite3 directly: one hand-over to a thread each.

SQLAlchemy runs SQLite through aiosqlite, which hands every DB-API call to the connection's thread and
wakes the event loop with its answer: a cursor, the statement, its rows, the cursor's close, a COMMIT
after a write and the pool's ROLLBACK when the connection is returned: four to six hand-overs per
statement (a traced password sign-in: 49 for its 11 statements). Each one is a context switch, and on a
busy core the event loop resumes with its caches cold.

Here a statement is one call to a worker thread that runs it, reads its rows and returns them, on a
connection of a small pool of its own in autocommit (a single statement is atomic on its own, as on the
PostgreSQL fast path, pg_fast). The repositories stay the SQLAlchemy ones: stores.py hands them
`db.UnitAwareStatements` over a `SqliteRunner` as where their single statements run, so the statements,
their conditions and the mapping of rows to models are theirs (rows.py), compiled once for SQLite, with
the same type conversions SQLAlchemy applies (a Boolean column reads as a bool). Inside a unit of work
they run on the unit's connection instead. Contract tests run every repository both ways
(tests/integration/contract, "sqlite-fast").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql.expression import ClauseElement

from threshold.adapters.sql.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    Columns,
    SyncStatements,
    compile_once,
    sqlite_pragmas,
)
from threshold.core.errors import DependencyUnavailable

_DIALECT = SQLiteDialect_pysqlite()
T = TypeVar("T")
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class SqliteStatement:
    """A statement as sqlite3 runs it: its SQL with `?` parameters, their names in order and their
    SQLAlchemy bind conversions, and its result columns' names and conversions."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]
    literals: Mapping[str, Any]
    """The statement's own values (`count - 1`: SQLAlchemy makes the 1 a parameter), by parameter name."""

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.literals[name] for name in self.names]
        return [
            value if bind is None else bind(value) for value, bind in zip(values, self.binds, strict=True)
        ]

    def row(self, values: Sequence[Any], described: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """A row by column name; a text() statement's columns are named as sqlite3 describes them."""
        if not self.keys:
            return {column[0]: value for column, value in zip(described, values, strict=True)}
        return {
            key: value if result is None else result(value)
            for key, result, value in zip(self.keys, self.results, values, strict=True)
        }


@functools.cache
def compiled(statement: ClauseElement) -> SqliteStatement:
    """`statement` compiled for sqlite3, once per statement object (so only statements built once may come
    here); every parameter must be a named bindparam or a value of the statement's own, and none may
    need compiling per call."""
    result = compile_once(statement, _DIALECT, "sqlite3")
    if result.insert_prefetch or result.update_prefetch:  # SQLAlchemy computes these per execution
        raise ValueError("a statement for sqlite3 must give every column with a Python-side default")
    names = tuple(result.positiontup or ())
    columns = result._result_columns  # what SQLAlchemy's own result rows are built from
    given = {name: result.binds[name] for name in names}
    return SqliteStatement(
        literals={name: bind.effective_value for name, bind in given.items() if not bind.required},
        sql=str(result),
        names=names,
        binds=tuple(result.binds[n].type.dialect_impl(_DIALECT).bind_processor(_DIALECT) for n in names),
        keys=tuple(column.keyname for column in columns),
        results=tuple(c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for c in columns),
    )


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """As db.translate_errors does for the same errors through SQLAlchemy: a database that cannot be
    opened, is locked past the busy timeout or fails to read or write is a 503."""
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.InterfaceError, OSError) as error:
        raise DependencyUnavailable() from error


class _CursorStatements:
    """db.SyncStatements (and `all`) on a sqlite3 connection, in the worker thread: how SqliteRunner runs
    every statement, alone or in a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, statement: ClauseElement, params: Mapping[str, Any], *, one: bool) -> list[Columns]:
        query = compiled(statement)
        cursor = self._conn.cursor()  # a cursor, not conn.execute: a traced connection traces its cursors
        try:
            cursor.execute(query.sql, query.args(params))
            if one:
                row = cursor.fetchone()
                rows = [] if row is None else [row]
            else:
                rows = cursor.fetchall()
            return [query.row(row, cursor.description) for row in rows]
        finally:
            cursor.close()

    def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None:
        rows = self._rows(statement, params, one=True)
        return rows[0] if rows else None

    def all(self, statement: ClauseElement, params: Mapping[str, Any]) -> Sequence[Columns]:
        return self._rows(statement, params, one=False)

    def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        query = compiled(statement)
        cursor = self._conn.cursor()
        try:
            cursor.execute(query.sql, query.args(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()


ACQUIRE_TIMEOUT = 5.0
"""Seconds a statement waits for a free connection before the database counts as unavailable (as on the
PostgreSQL fast path, pg_fast.ACQUIRE_TIMEOUT)."""


class _Closed:
    """Put in the queue of free connections when the runner closes: whoever takes it passes it on."""


_CLOSED = _Closed()


class _Slot:
    """A connection of the pool, or not yet one (opened by its first statement in the worker thread)."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn


class SqliteRunner:
    """Up to `size` connections to one SQLite database file, each used by one worker thread at a time;
    for one event loop (its queue of free connections waits on that loop)."""

    def __init__(self, path: str, *, size: int = 10) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="sqlite")
        self._free: asyncio.LifoQueue[sqlite3.Connection | _Closed | None] = asyncio.LifoQueue()
        for _ in range(size):  # None: a connection not opened yet
            self._free.put_nowait(None)
        self._closed = False
        self.instrument: Callable[[sqlite3.Connection], sqlite3.Connection] | None = None
        """Wraps each connection opened from now on (web.tracing: its cursors' statements as spans)."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit: each statement its own transaction
            check_same_thread=False,  # one thread at a time (the queue), not always the same one
        )
        sqlite_pragmas(conn)
        return conn if self.instrument is None else self.instrument(conn)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on a free connection in a worker thread. The connection is free again only when the
        thread is done with it, even if the caller was cancelled meanwhile (the thread cannot be)."""
        if self._free.empty():  # every connection busy (a write waiting out another's lock, say)
            try:
                async with asyncio.timeout(ACQUIRE_TIMEOUT):
                    taken = await self._free.get()
            except TimeoutError as error:
                raise DependencyUnavailable() from error
        else:
            taken = self._free.get_nowait()
        if isinstance(taken, _Closed) or self._closed:
            self._free.put_nowait(_CLOSED if self._closed else taken)
            raise DependencyUnavailable()
        slot = _Slot(taken)

        def call() -> T:
            if slot.conn is None:
                slot.conn = self._connect()
            conn = slot.conn
            try:
                return work(conn)
            finally:
                if conn.in_transaction:  # left open (`work` raised, or its COMMIT failed): never pooled so
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        conn.close()
                        slot.conn = None

        try:  # in the caller's context, so that a traced statement is a span of the caller's request
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, contextvars.copy_context().run, call
            )
        except RuntimeError as error:  # the executor was shut down (the runner closed meanwhile)
            self._release(slot.conn)
            raise DependencyUnavailable() from error
        future.add_done_callback(lambda _: self._release(slot.conn))
        with _translate():
            return await asyncio.shield(future)

    def _release(self, conn: sqlite3.Connection | None) -> None:
        if not self._closed:
            self._free.put_nowait(conn)
        elif conn is not None:
            conn.close()

    async def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None:
        """The first row of `statement` with its named parameters, or None."""
        return await self._run(lambda conn: _CursorStatements(conn).first(statement, params))

    async def all(self, statement: ClauseElement, params: Mapping[str, Any]) -> Sequence[Columns]:
        """Every row of `statement` with its named parameters."""
        return await self._run(lambda conn: _CursorStatements(conn).all(statement, params))

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run one write statement with its named parameters; the rows it touched."""
        return await self._run(lambda conn: _CursorStatements(conn).execute(statement, params))

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T:
        """`work` in one hand-over to a worker thread, in one transaction that takes the write lock at
        its start (BEGIN IMMEDIATE: a read then a write never finds the lock taken in between). If `work`
        raises, `_run` rolls back what it leaves open, as after any statement."""

        def call(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            result = work(_CursorStatements(conn))
            conn.execute("COMMIT")
            return result

        return await self._run(call)

    async def close(self) -> None:
        """Close the idle connections (one in use closes when its statement is done) and the threads; a
        statement asked for from now on, or waiting for a connection, is a 503."""
        self._closed = True
        while not self._free.empty():
            conn = self._free.get_nowait()
            if conn is not None and not isinstance(conn, _Closed):  # (a traced one is a proxy of one)
                conn.close()
        self._free.put_nowait(_CLOSED)
        self._executor.shutdown(wait=False)
