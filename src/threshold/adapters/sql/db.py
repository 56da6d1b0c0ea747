"""Engine creation and the translation of driver failures into DependencyUnavailable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Row, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from threshold.core.errors import DependencyUnavailable


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine tuned per backend (WAL and a busy timeout on SQLite, pre-ping on PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, poolclass=NullPool if ":memory:" in url else None, connect_args={"timeout": 15}
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 15},
    )


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


class SqlRepo:
    """A repository on a SQLAlchemy engine: reads on a connection, each write in a transaction of its
    own, driver failures as DependencyUnavailable."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, statement: Any) -> Sequence[Row[Any]]:
        with translate_errors():
            async with self._engine.connect() as conn:
                return (await conn.execute(statement)).all()

    async def _write(self, statement: Any) -> int:
        """Run one statement in a transaction; the rows it touched."""
        with translate_errors():
            async with self._engine.begin() as conn:
                return int((await conn.execute(statement)).rowcount)
