"""The hottest PostgreSQL reads and writes on asyncpg directly: refresh rotation and user lookups.

Through SQLAlchemy a statement costs a pool ping, BEGIN, the statement and COMMIT/ROLLBACK, about
1-2 ms of CPU each on a small machine: a rotation (read, mark the parent used, store the successor)
was ~10 ms, capping a worker near 100 rotations/s. Here the read is one prepared SELECT and the
rotation one statement (a data-modifying CTE, atomic on its own): the successor is inserted only if
the UPDATE claimed the parent, so two concurrent uses cannot both rotate. A grant by id (read on every
introspection or userinfo call with a user's access token) is one prepared SELECT too. Everything else
about refresh tokens and grants stays on the SQLAlchemy repository this one extends. The same holds
for a user by id or email and a password hash (every session-check miss, every sign-in): one prepared
SELECT each.
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

from threshold.adapters.sql.db import unavailable_sqlstate
from threshold.adapters.sql.oidc_repos import SqlRefreshTokenRepo
from threshold.adapters.sql.repos import SqlUserRepo
from threshold.core.errors import DependencyUnavailable
from threshold.core.models import PasswordCredential, User
from threshold.oidc.models import Grant, RefreshToken

_COLUMNS = [f.name for f in fields(RefreshToken)]
_INSERTED = [c for c in _COLUMNS if c not in ("used_at", "revoked_at", "successor")]

_GET = f"SELECT {', '.join(_COLUMNS)} FROM refresh_tokens WHERE digest = $1"  # noqa: S608 (fixed names)
_GRANT = f"SELECT {', '.join(f.name for f in fields(Grant))} FROM oauth_grants WHERE id = $1"  # noqa: S608

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
        if unavailable_sqlstate(getattr(error, "sqlstate", None)):
            raise DependencyUnavailable() from error
        raise


async def _keep(conn: Any) -> None:
    """No reset round trip on release: these statements leave no session state (no locks, cursors,
    listeners or settings) behind."""


class FastPool:
    """One small asyncpg pool per process, opened on first use, shared by the fast repositories."""

    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

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
            async with self._pool.acquire(timeout=5) as conn:
                yield conn

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            with _translate():
                return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            with _translate():
                return await conn.fetchval(query, *args)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class PgRefreshTokenRepo(SqlRefreshTokenRepo):
    def __init__(self, engine: AsyncEngine, pool: FastPool) -> None:
        super().__init__(engine)
        self._fast = pool

    async def get(self, digest: str) -> RefreshToken | None:
        row = await self._fast.fetchrow(_GET, digest)
        if row is None:
            return None
        values = dict(row)
        values["amr"] = tuple(a for a in values["amr"].split(",") if a)
        return RefreshToken(**values)

    async def get_grant(self, grant_id: str) -> Grant | None:
        """Read on every introspection and userinfo call (and admin API request) with a user's token."""
        if "\x00" in grant_id:  # PostgreSQL text refuses NUL
            return None
        row = await self._fast.fetchrow(_GRANT, grant_id)
        return Grant(**dict(row)) if row is not None else None

    async def rotate(
        self, parent_digest: str, successor: RefreshToken, *, now: float, sealed: str | None
    ) -> bool:
        values = [getattr(successor, c) for c in _INSERTED]
        values[_INSERTED.index("amr")] = ",".join(successor.amr)
        claimed = await self._fast.fetchval(_ROTATE, now, sealed, parent_digest, *values)
        return claimed is not None


_USER_COLUMNS = [f.name for f in fields(User)]
_USER_BY_ID = f"SELECT {', '.join(_USER_COLUMNS)} FROM users WHERE id = $1"  # noqa: S608 (fixed names)
_USER_BY_EMAIL = f"SELECT {', '.join(_USER_COLUMNS)} FROM users WHERE email_normalized = $1"  # noqa: S608
_PASSWORD = "SELECT user_id, hash, updated_at FROM password_credentials WHERE user_id = $1"


class PgUserRepo(SqlUserRepo):
    def __init__(self, engine: AsyncEngine, pool: FastPool) -> None:
        super().__init__(engine)
        self._fast = pool

    async def get(self, user_id: str) -> User | None:
        row = await self._fast.fetchrow(_USER_BY_ID, user_id)
        return User(**dict(row)) if row is not None else None

    async def get_by_email(self, email_normalized: str) -> User | None:
        if "\x00" in email_normalized:  # never stored, and PostgreSQL text refuses NUL
            return None
        row = await self._fast.fetchrow(_USER_BY_EMAIL, email_normalized)
        return User(**dict(row)) if row is not None else None

    async def get_password(self, user_id: str) -> PasswordCredential | None:
        row = await self._fast.fetchrow(_PASSWORD, user_id)
        return PasswordCredential(**dict(row)) if row is not None else None
