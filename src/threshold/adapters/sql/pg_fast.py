"""The hottest PostgreSQL reads and writes on asyncpg directly: refresh rotation, user lookups and the
single statements of every sign-in.

Through SQLAlchemy a statement costs a pool checkout, BEGIN, the statement and COMMIT/ROLLBACK, about
1-2 ms of CPU each on a small machine (when this was written, with a ping at every checkout): a rotation
(read, mark the parent used, store the successor) was ~10 ms, capping a worker near 100 rotations/s.
Here the read is one prepared SELECT and the rotation one statement (a data-modifying CTE, atomic on its
own): the successor is inserted only if the UPDATE claimed the parent, so two concurrent uses cannot
both rotate. A grant by id (read on every introspection or userinfo call with a user's access token), a
user by id or email and a password hash (every session-check miss, every sign-in) are one prepared
SELECT each. So are the other single statements of every sign-in: a domain's claim, the account's
memberships, second factors and credential epoch, and the writes of a success (its audit event, the
known device, the network).

The repositories stay the SQLAlchemy ones; stores.py gives them `db.UnitAwareStatements` as where their
single statements run, so only how a row is fetched changes: the statements, their conditions and the
mapping of rows to models are the repositories' own (rows.py), compiled once for asyncpg. Only the
rotation needs a repository of its own here (PgRefreshTokenRepo): its CTE is built from the same claim
of the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import ClauseElement

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import Columns, UnitAwareStatements, compile_once, unavailable_sqlstate
from threshold.adapters.sql.oidc_repos import SqlRefreshTokenRepo
from threshold.adapters.sql.rows import (
    CLAIM_PARENT,
    NEW_REFRESH_TOKEN_COLUMNS,
    new_refresh_token_values,
)
from threshold.core.errors import DependencyUnavailable
from threshold.oidc.models import RefreshToken

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class AsyncpgStatement:
    """A statement as asyncpg runs it: its SQL with numbered parameters, and their names in order."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


@functools.cache
def compiled(statement: ClauseElement) -> AsyncpgStatement:
    """`statement` compiled for asyncpg, once per statement object (so only statements built once may
    come here: one built per call would grow this cache); every parameter must be a named bindparam."""
    result = compile_once(statement, _DIALECT, "asyncpg")
    return AsyncpgStatement(str(result), tuple(result.positiontup or ()))


def _rotation() -> ClauseElement:
    """Claim the parent (rows.CLAIM_PARENT) and, only if that claimed a row, insert the successor."""
    c = t.refresh_tokens.c
    parent = CLAIM_PARENT.returning(c.digest).cte("parent")
    successor = select(*(bindparam(name, type_=c[name].type) for name in NEW_REFRESH_TOKEN_COLUMNS))
    return (
        insert(t.refresh_tokens)
        .from_select(NEW_REFRESH_TOKEN_COLUMNS, successor.select_from(parent))
        .returning(c.digest)
    )


_ROTATE = _rotation()


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """An unreachable, restarting or overloaded server is a 503, like everywhere else."""
    try:
        yield
    except (TimeoutError, OSError, asyncpg.InterfaceError) as error:
        raise DependencyUnavailable() from error
    except asyncpg.PostgresError as error:
        if unavailable_sqlstate(getattr(error, "sqlstate", None)):
            raise DependencyUnavailable() from error
        raise


async def _keep(conn: Any) -> None:
    """No reset round trip on release: these statements leave no session state (no locks, cursors,
    listeners or settings) behind."""


ACQUIRE_TIMEOUT = 5.0
"""Seconds a request waits for a connection of the fast pool before the database counts as unavailable."""


class FastPool:
    """One small asyncpg pool per process, opened on first use, shared by the fast repositories."""

    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._checkouts = 0  # connections held or asked for through `connection`, the pool's only user

    @property
    def checkouts(self) -> int:
        """Connections held or waited for right now (through `connection`)."""
        return self._checkouts

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        with _translate():
            if self._pool is None:
                async with self._lock:
                    if self._pool is None:
                        self._pool = await asyncpg.create_pool(
                            self._dsn,
                            min_size=1,
                            max_size=self._max_size,
                            timeout=5,
                            command_timeout=15,
                            reset=_keep,
                        )
            self._checkouts += 1
            try:
                if self._checkouts <= self._max_size:
                    # A connection is free (or may be opened, within the pool's connect timeout): the
                    # checkout waits for no other request's release, so no timer is set. Counted here,
                    # not with get_idle_size(), which walks every connection of the pool per call.
                    conn = await self._pool.acquire()
                else:
                    # asyncio.timeout, not acquire(timeout=...): asyncpg wraps that in wait_for, a task
                    # of its own per checkout (Python 3.11), a few per cent of a refresh's CPU.
                    async with asyncio.timeout(ACQUIRE_TIMEOUT):
                        conn = await self._pool.acquire()
                try:
                    yield conn
                finally:
                    await self._pool.release(conn)
            finally:
                self._checkouts -= 1

    async def first(self, statement: ClauseElement, params: Mapping[str, Any]) -> Columns | None:
        """The first row of `statement` with its named parameters (an asyncpg Record), or None."""
        query = compiled(statement)
        async with self.connection() as conn:
            with _translate():
                row: Columns | None = await conn.fetchrow(query.sql, *query.args(params))
                return row

    async def all(self, statement: ClauseElement, params: Mapping[str, Any]) -> Sequence[Columns]:
        """Every row of `statement` with its named parameters (asyncpg Records)."""
        query = compiled(statement)
        async with self.connection() as conn:
            with _translate():
                rows: Sequence[Columns] = await conn.fetch(query.sql, *query.args(params))
                return rows

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run one write statement with its named parameters; the rows it touched."""
        query = compiled(statement)
        async with self.connection() as conn:
            with _translate():
                status: str = await conn.execute(query.sql, *query.args(params))
        return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 1", "UPDATE 3", "DELETE 0"

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class PgRefreshTokenRepo(SqlRefreshTokenRepo):
    """SqlRefreshTokenRepo whose single-row reads and rotation run on asyncpg."""

    def __init__(self, engine: AsyncEngine, pool: FastPool) -> None:
        super().__init__(engine, statements=UnitAwareStatements(engine, pool))
        self._fast = pool

    async def rotate(
        self, parent_digest: str, successor: RefreshToken, *, now: float, sealed: str | None
    ) -> bool:
        params = {
            **new_refresh_token_values(successor),
            "claimed_digest": parent_digest,
            "now": now,
            "sealed": sealed,
        }
        return await self._fast.first(_ROTATE, params) is not None
