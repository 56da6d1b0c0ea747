"""Refresh-token rotation on PostgreSQL in two round trips, on asyncpg directly.

Through SQLAlchemy a statement costs a pool ping, BEGIN, the statement and COMMIT/ROLLBACK, about
1-2 ms of CPU each on a small machine: a rotation (read, mark the parent used, store the successor)
was ~10 ms, capping a worker near 100 rotations/s. Here the read is one prepared SELECT and the
rotation one statement (a data-modifying CTE, atomic on its own): the successor is inserted only if
the UPDATE claimed the parent, so two concurrent uses cannot both rotate. Everything else about
refresh tokens stays on the SQLAlchemy repository this one extends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql.oidc_repos import SqlRefreshTokenRepo
from threshold.core.errors import DependencyUnavailable
from threshold.oidc.models import RefreshToken

_COLUMNS = [f.name for f in fields(RefreshToken)]
_INSERTED = [c for c in _COLUMNS if c not in ("used_at", "revoked_at", "successor")]

_GET = f"SELECT {', '.join(_COLUMNS)} FROM refresh_tokens WHERE digest = $1"  # noqa: S608 (fixed names)

_ROTATE = (
    "WITH parent AS (UPDATE refresh_tokens SET used_at = $1, successor = $2 "  # noqa: S608 (fixed names)
    "WHERE digest = $3 AND used_at IS NULL AND revoked_at IS NULL RETURNING digest) "
    f"INSERT INTO refresh_tokens ({', '.join(_INSERTED)}) "
    f"SELECT {', '.join(f'${i + 4}' for i in range(len(_INSERTED)))} FROM parent RETURNING digest"
)


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """An unreachable, restarting or overloaded server is a 503, like everywhere else."""
    try:
        yield
    except (TimeoutError, OSError, asyncpg.InterfaceError) as error:
        raise DependencyUnavailable() from error
    except asyncpg.PostgresError as error:
        state = getattr(error, "sqlstate", "") or ""
        if state.startswith(("08", "53", "57P")) or state == "25006":
            raise DependencyUnavailable() from error
        raise


async def _keep(conn: Any) -> None:
    """No reset round trip on release: these statements leave no session state (no locks, cursors,
    listeners or settings) behind."""


class PgRefreshTokenRepo(SqlRefreshTokenRepo):
    def __init__(self, engine: AsyncEngine, database_url: str, *, max_size: int = 10) -> None:
        super().__init__(engine)
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
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
            async with self._pool.acquire(timeout=5) as conn:
                yield conn

    async def get(self, digest: str) -> RefreshToken | None:
        async with self._connection() as conn:
            with _translate():
                row = await conn.fetchrow(_GET, digest)
        if row is None:
            return None
        values = dict(row)
        values["amr"] = tuple(a for a in values["amr"].split(",") if a)
        return RefreshToken(**values)

    async def rotate(
        self, parent_digest: str, successor: RefreshToken, *, now: float, sealed: str | None
    ) -> bool:
        values = [getattr(successor, c) for c in _INSERTED]
        values[_INSERTED.index("amr")] = ",".join(successor.amr)
        async with self._connection() as conn:
            with _translate():
                claimed = await conn.fetchval(_ROTATE, now, sealed, parent_digest, *values)
        return claimed is not None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
