"""Engine creation and the translation of driver failures into DependencyUnavailable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from sqlalchemy import Connection, Dialect, Engine, Row, Select, TextClause, event, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from threshold.core.errors import DependencyUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Query = Select[Any] | TextClause
"""A statement that returns rows: a SELECT, or a text() one (a write with RETURNING)."""

IDLE_PING_AFTER = 1.0
"""A pooled PostgreSQL connection idle longer than this (seconds) is pinged before it is handed out."""


SQLITE_BUSY_TIMEOUT_MS = 15000
"""How long a SQLite write waits for another connection's write to finish before it is a 503."""


def sqlite_pragmas(dbapi_connection: Any) -> None:
    """Every SQLite connection's settings (the engine's and sqlite_fast's): WAL, so readers never wait
    for the writer; synchronous=NORMAL, durable at each checkpoint under WAL; foreign keys enforced; a
    writer waits up to SQLITE_BUSY_TIMEOUT_MS for another."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10, idle_ping_after: float = IDLE_PING_AFTER) -> AsyncEngine:
    """An async engine tuned per backend: WAL and a busy timeout on SQLite; on PostgreSQL, a pool whose
    connections are pinged when they have been idle (`ping_when_idle`)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            poolclass=NullPool if ":memory:" in url else None,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            sqlite_pragmas(dbapi_connection)

        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 15},
    )
    ping_when_idle(engine, after=idle_ping_after)
    return engine


def ping_when_idle(engine: AsyncEngine, *, after: float) -> None:
    """Ping a pooled connection at checkout only when it has sat idle more than `after` seconds.

    SQLAlchemy's `pool_pre_ping` pings at every checkout: on asyncpg three round trips (a transaction
    around the ping, for pgbouncer), more than the statement the connection is taken for. Under load a
    connection is back in use within milliseconds, and what a ping guards against (a database restarted,
    a failover, an idle connection cut by a firewall) shows on connections that have waited. The
    checkout hook is SQLAlchemy's documented way to refuse a connection: `InvalidatePoolError` discards
    it and every connection pooled before it, and the pool connects afresh, as pre-ping does. A
    connection cut while in use fails its statement, which is a 503 (translate_errors) and invalidates
    the pool the same way.
    """
    pool_events = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool_events, "checkin")
    def _idle_since(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool_events, "checkout")
    def _ping_if_idle(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= after:
            return  # just connected, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError() from error


@dataclass(eq=False)
class _Unit:
    engine: Engine
    conn: AsyncConnection
    task: asyncio.Task[Any] | None
    open: bool = True


_UNIT: ContextVar[_Unit | None] = ContextVar("threshold_sql_unit", default=None)


def _joined(engine: AsyncEngine) -> AsyncConnection | None:
    """The connection of the unit of work this task is in on `engine`, if any. A task started inside a
    unit inherits the context but not the unit: it runs on connections of its own."""
    unit = _UNIT.get()
    if unit is None or not unit.open or unit.engine is not engine.sync_engine:
        return None
    return unit.conn if unit.task is asyncio.current_task() else None


def in_unit(engine: AsyncEngine) -> bool:
    """Whether this task is in a unit of work on `engine`."""
    return _joined(engine) is not None


@contextlib.asynccontextmanager
async def unit_of_work(engine: AsyncEngine) -> AsyncIterator[None]:
    """One transaction for every repository read and write on `engine` inside the block (this task's):
    all of it is committed at the end, or none of it if the block raises.

    Repositories join it through `reading` and `writing` (the asyncpg fast path's statements too:
    `UnitAwareStatements`). Inside a unit a failed statement fails the unit: a write that expects a
    conflict (a unique address taken meanwhile) raises out of it, and the caller goes another way
    after the rollback. Side effects
    outside the database (a Redis message, a task woken) are not undone: a unit holds writes whose
    effects elsewhere are harmless if it rolls back, such as those about an account it creates.
    """
    if _joined(engine) is not None:
        raise RuntimeError("units of work do not nest")
    with translate_errors():
        async with engine.begin() as conn:
            unit = _Unit(engine=engine.sync_engine, conn=conn, task=asyncio.current_task())
            token = _UNIT.set(unit)
            try:
                yield
            finally:
                unit.open = False
                _UNIT.reset(token)


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction for writes: the unit of work's when there is one (its statements
    commit with it), otherwise a transaction of their own."""
    joined = _joined(engine)
    if joined is not None:
        yield joined
        return
    async with engine.begin() as conn:
        yield conn


async def write_one(engine: AsyncEngine, statement: Any, params: Mapping[str, Any] | None = None) -> int:
    """Run ONE write statement; the rows it touched. In the unit of work when there is one (it commits
    with it). Otherwise, on PostgreSQL, in autocommit: a single statement is atomic on its own, so a
    BEGIN and a COMMIT around it would only add two round trips (and hold a transaction open between
    them); on SQLite, in a transaction of its own (pysqlite opens one before any write regardless).

    Statements that must commit together go in one `writing` block or one `unit_of_work`, never in
    two calls of this."""
    async with _one_write(engine) as conn:
        return int((await conn.execute(statement, params)).rowcount)


async def write_returning(
    engine: AsyncEngine, statement: Any, params: Mapping[str, Any]
) -> Sequence[Row[Any]]:
    """`write_one` for a statement with RETURNING: the rows it returns."""
    async with _one_write(engine) as conn:
        return (await conn.execute(statement, params)).all()


@contextlib.asynccontextmanager
async def _one_write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Where `write_one` runs its statement (see there)."""
    joined = _joined(engine)
    if joined is not None:
        yield joined
    elif engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    else:
        async with engine.begin() as conn:
            yield conn


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads: the unit of work's when there is one (it sees the unit's writes).
    Otherwise, on PostgreSQL, one in autocommit: each statement is its own transaction, as it already
    sees its own snapshot under READ COMMITTED, without the BEGIN and ROLLBACK round trips around it
    and without a transaction held open between statements."""
    joined = _joined(engine)
    if joined is not None:
        yield joined
        return
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


# SQLSTATEs that say the server cannot serve right now, not that the statement is wrong: connection
# exceptions (08), insufficient resources such as too many connections (53), a shutdown or a restart
# in progress ("the database system is starting up", "... is shutting down", "... not yet accepting
# connections": 57P01-57P03), and a read-only standby during a failover (25006).
_UNAVAILABLE_CLASSES = ("08", "53")
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})


def _sqlstate(error: exc.DBAPIError) -> str | None:
    for candidate in (error.orig, error.orig.__cause__ if error.orig is not None else None):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


def is_unavailable(error: exc.DBAPIError) -> bool:
    """Whether a driver error means the database is down, restarting or overloaded (not a bug)."""
    if error.connection_invalidated:
        return True
    return unavailable_sqlstate(_sqlstate(error))


def unavailable_sqlstate(state: str | None) -> bool:
    """Whether a PostgreSQL SQLSTATE says the server cannot serve right now (see the list above)."""
    return state is not None and (state in _UNAVAILABLE_STATES or state.startswith(_UNAVAILABLE_CLASSES))


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a database outage into DependencyUnavailable (a 503), never a 500 or a false answer."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise DependencyUnavailable() from error
    except exc.DBAPIError as error:
        if is_unavailable(error):
            raise DependencyUnavailable() from error
        raise
    except (OSError, ConnectionError) as error:
        raise DependencyUnavailable() from error


class FreshStatistics:
    """ANALYZE a PostgreSQL table once this process has added 100, 1,000, 10,000 ... rows to it.

    A table that fills from empty (an identity provider's initial sync: thousands of SCIM users in a
    minute) has no planner statistics until autovacuum's next round, up to a minute later. Without them
    PostgreSQL's default selectivities make every index on the table's leading columns look alike, and a
    lookup by a unique key can walk another index and read every row of the organization (measured: 5,000
    rows read per userName lookup at 5,000 users, each create slower than the last). Once analyzed, the
    statistics say which columns are unique and stay true as the table grows; autovacuum keeps them
    fresh from then on. SQLite's planner prefers the index with the most equality terms without them.
    """

    def __init__(self, engine: AsyncEngine, table: str, *, first: int = 100) -> None:
        self._engine = engine
        self._table = table
        self._count = 0
        self._next = first

    async def added(self, rows: int = 1) -> None:
        self._count += rows
        if self._count < self._next:
            return
        while self._next <= self._count:
            self._next *= 10
        if self._engine.dialect.name != "postgresql":
            return
        try:
            with translate_errors():  # on a connection of its own, outside any unit of work
                async with self._engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text(f'ANALYZE "{self._table}"'))
        except Exception:  # statistics are an optimisation: never fail the write that triggered them
            log.warning("ANALYZE %s failed", self._table, exc_info=True)


class Columns(Protocol):
    """A row, read by column name."""

    def __getitem__(self, name: str, /) -> Any: ...


class Statements(Protocol):
    """Where a repository runs its single statements built once with named parameters: single-row
    reads and single write statements (each atomic on its own). On a SQLAlchemy engine
    (`EngineStatements`) or on a fast runner (`UnitAwareStatements`: on asyncpg or sqlite3, the same
    statement compiled once, without SQLAlchemy's per-statement work)."""

    async def first(self, statement: Query, params: Mapping[str, Any]) -> Columns | None:
        """The first row of `statement` with its named parameters, or None."""
        ...

    async def all(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        """Every row of `statement` with its named parameters."""
        ...

    async def execute(self, statement: Any, params: Mapping[str, Any]) -> int:
        """Run one write statement with its named parameters (`write_one`); the rows it touched."""
        ...

    async def returning(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        """Run one write statement with RETURNING (as `execute`); the rows it returns."""
        ...

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T:
        """`work`'s statements in one transaction (the unit of work's, when there is one): all of them
        committed, or none if it raises. `work` runs synchronously where the transaction is (on SQLite's
        fast runner in its worker thread, so the whole transaction is one hand-over): it must do nothing
        but run its statements and decide on their rows."""
        ...


class SyncStatements(Protocol):
    """The statements of a transaction (`Statements.transaction`), run synchronously."""

    def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None: ...

    def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int: ...


class _ConnectionStatements:
    """SyncStatements on a SQLAlchemy connection (inside `AsyncConnection.run_sync`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None:
        row = self._conn.execute(cast(Executable, statement), dict(params)).first()
        return row._mapping if row else None

    def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        return int(self._conn.execute(cast(Executable, statement), dict(params)).rowcount)


class EngineStatements:
    """Statements on a SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def first(self, statement: Query, params: Mapping[str, Any]) -> Columns | None:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(statement, dict(params))).first()
        return row._mapping if row else None

    async def all(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (await conn.execute(statement, dict(params))).all()
        return [row._mapping for row in rows]

    async def execute(self, statement: Any, params: Mapping[str, Any]) -> int:
        with translate_errors():
            return await write_one(self._engine, statement, dict(params))

    async def returning(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        with translate_errors():
            rows = await write_returning(self._engine, statement, dict(params))
        return [row._mapping for row in rows]

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T:
        with translate_errors():
            async with writing(self._engine) as conn:
                return await conn.run_sync(lambda sync: work(_ConnectionStatements(sync)))


class Runner(Protocol):
    """Single statements outside SQLAlchemy, compiled once, each in autocommit (a write with RETURNING
    goes through `all`): the asyncpg pool on PostgreSQL (pg_fast.FastPool), sqlite3 worker threads on
    SQLite (sqlite_fast.SqliteRunner)."""

    async def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None: ...

    async def all(self, statement: ClauseElement, params: Mapping[str, Any]) -> Sequence[Columns]: ...

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int: ...

    async def close(self) -> None: ...


@runtime_checkable
class Transactions(Protocol):
    """A runner that also runs a whole transaction in one go (sqlite_fast.SqliteRunner)."""

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T: ...


def compile_once(statement: ClauseElement, dialect: Dialect, driver: str) -> SQLCompiler:
    """`statement` compiled for a fast runner's `driver` (pg_fast, sqlite_fast), which keeps the result
    for the statement object's lifetime: so it must not need compiling per call (an expanding IN does)."""
    result = cast(SQLCompiler, statement.compile(dialect=dialect))
    if result.post_compile_params or "POSTCOMPILE" in str(result):
        raise ValueError(f"a statement for {driver} must not need compiling per call")
    return result


class UnitAwareStatements:
    """Single statements on a fast runner, except inside a unit of work on the engine (`unit_of_work`):
    there on the unit's connection, so that a read sees what the unit has written and a write commits
    (or rolls back) with it."""

    def __init__(self, engine: AsyncEngine, runner: Runner) -> None:
        self._engine = engine
        self._runner = runner
        self._unit = EngineStatements(engine)
        self._transactions = runner if isinstance(runner, Transactions) else None

    def _way(self) -> Runner | EngineStatements:
        return self._unit if in_unit(self._engine) else self._runner

    async def first(self, statement: Query, params: Mapping[str, Any]) -> Columns | None:
        return await self._way().first(statement, params)

    async def all(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        return await self._way().all(statement, params)

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        return await self._way().execute(statement, params)

    async def returning(self, statement: Query, params: Mapping[str, Any]) -> Sequence[Columns]:
        if in_unit(self._engine):
            return await self._unit.returning(statement, params)
        return await self._runner.all(statement, params)  # in autocommit: committed with the statement

    async def transaction(self, work: Callable[[SyncStatements], T]) -> T:
        """On the runner when it runs transactions (SQLite's), else on the engine (PostgreSQL's asyncpg
        pool has no synchronous side)."""
        if self._transactions is None or in_unit(self._engine):
            return await self._unit.transaction(work)
        return await self._transactions.transaction(work)


class SqlRepo:
    """A repository on a SQLAlchemy engine: reads through `reading`, each write in a transaction of its
    own or the unit of work's (`writing`), its hottest single statements through `statements` (on
    PostgreSQL the asyncpg pool's, pg_fast), driver failures as DependencyUnavailable."""

    def __init__(self, engine: AsyncEngine, *, statements: Statements | None = None) -> None:
        self._engine = engine
        self._statements: Statements = statements or EngineStatements(engine)

    async def _rows(self, statement: Any, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        """The rows of a read; `params` fill a prebuilt statement's named bind parameters."""
        with translate_errors():
            async with reading(self._engine) as conn:
                return (await conn.execute(statement, params)).all()

    async def _write(self, statement: Any, params: Mapping[str, Any] | None = None) -> int:
        """Run one write statement on its own (`write_one`); the rows it touched."""
        with translate_errors():
            return await write_one(self._engine, statement, params)
