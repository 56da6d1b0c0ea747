"""Every store of one deployment, chosen in one place from its backend: SQLite (the embedded default),
PostgreSQL (SQLAlchemy, with asyncpg for the hot reads), or PostgreSQL + Redis (sessions, counters,
single-use values and the invalidation feed in Redis).

The Redis and asyncpg adapters are imported where their backend is chosen: a process on SQLite (the
default, and every `threshold` command on it) does not load the drivers it never uses.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.metrics import feed_state
from threshold.adapters.sql import invalidation as sql_invalidation
from threshold.adapters.sql.db import Runner, Statements, UnitAwareStatements, create_engine
from threshold.adapters.sql.factor_repos import SqlEphemeralStore, SqlFactorRepo
from threshold.adapters.sql.oidc_repos import (
    SqlClientRepo,
    SqlCodeRepo,
    SqlConsentRepo,
    SqlMarkStore,
    SqlRefreshTokenRepo,
    SqlSigningKeyRepo,
)
from threshold.adapters.sql.org_repos import SqlOrgRepo
from threshold.adapters.sql.repos import (
    SqlAuditLog,
    SqlRateLimitStore,
    SqlSessionStore,
    SqlSignInWrites,
    SqlUserRepo,
)
from threshold.adapters.sql.sqlite_fast import SqliteRunner
from threshold.adapters.sql.sso_repos import SqlConnectionRepo
from threshold.adapters.sql.token_repos import SqlTokenRepo
from threshold.core.orgs.ports import OrgRepo
from threshold.core.ports import (
    EphemeralStore,
    FactorRepo,
    Invalidations,
    RateLimitStore,
    SessionStore,
    TokenRepo,
    UserRepo,
)
from threshold.core.session_cache import SessionCache
from threshold.core.sso.ports import ConnectionRepo
from threshold.oidc.ports import (
    ClientRepo,
    CodeRepo,
    ConsentRepo,
    MarkStore,
    RefreshTokenRepo,
    SigningKeyRepo,
)
from threshold.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from threshold.adapters.sql.pg_fast import FastPool


class _NoInvalidations:
    async def publish(self, message: str) -> int:
        return 0


@dataclass
class Stores:
    """The typed bundle of one backend's stores (raw: the session cache's invalidating wrappers are put
    around them by the wiring)."""

    engine: AsyncEngine
    redis: aioredis.Redis | None
    fast_pool: FastPool | None
    runner: Runner | None
    """The fast runner of the repositories' single statements (closed with the stores): on PostgreSQL the
    asyncpg pool (`fast_pool`), on a SQLite file sqlite3 worker threads, else None."""
    statements: Statements | None
    """Where the repositories' single statements run: `runner`, except in a unit of work; None: their
    engine."""
    users: UserRepo
    audit_log: SqlAuditLog
    sign_in_writes: SqlSignInWrites
    sessions: SessionStore
    rate_limits: RateLimitStore
    marks: MarkStore
    ephemeral: EphemeralStore
    factors: FactorRepo
    tokens: TokenRepo
    codes: CodeRepo
    refresh_tokens: RefreshTokenRepo
    clients: ClientRepo
    consents: ConsentRepo
    signing_keys: SigningKeyRepo
    orgs: OrgRepo
    connections: ConnectionRepo
    cache: SessionCache
    invalidations: Invalidations
    purgeable: list[object] = field(default_factory=list)
    """Stores whose expired rows the sweeper deletes (Redis expires its own keys)."""


def _session_cache(
    settings: Settings, engine: AsyncEngine, redis_client: aioredis.Redis | None
) -> tuple[SessionCache, Invalidations]:
    """The process-local session cache and the feed that keeps every process's copy exact."""
    size, ttl = settings.session.cache_entries, settings.session.cache_ttl

    def reported(feed: str) -> Callable[[bool], None] | None:  # no cache, no feed to report on
        return feed_state(feed) if size > 0 and ttl > 0 else None

    if redis_client is not None:
        from threshold.adapters.redis import invalidation as redis_invalidation

        bus: Invalidations = redis_invalidation.RedisInvalidations(redis_client, settings.redis_key_prefix)
        return SessionCache(max_entries=size, max_age=ttl, on_live=reported("redis")), bus
    url = settings.effective_database_url
    if url.startswith("postgresql"):
        channel = sql_invalidation.channel_name(settings.redis_key_prefix)
        cache = SessionCache(max_entries=size, max_age=ttl, on_live=reported("postgres"))
        return cache, sql_invalidation.PostgresInvalidations(engine, channel)
    path = sql_invalidation.change_file_for(url)
    if path is None:  # in-memory SQLite: one connection, one process, nothing to share
        return SessionCache(max_entries=0, max_age=0), _NoInvalidations()
    change_file = sql_invalidation.ChangeFile(path)
    cache = SessionCache(max_entries=size, max_age=ttl, probe=change_file.changed, on_live=reported("file"))
    return cache, change_file


def invalidation_listener(
    settings: Settings, engine: AsyncEngine, redis_client: aioredis.Redis | None, cache: SessionCache
) -> Coroutine[Any, Any, None] | None:
    """What feeds this process's session cache from every process's revocations, for this backend; None
    on SQLite, where the change file is probed on every check. The heartbeat goes out as every
    invalidation does, so that it proves the path they take."""
    if settings.redis_url and redis_client is not None:
        from threshold.adapters.redis import invalidation as redis_invalidation

        bus = redis_invalidation.RedisInvalidations(redis_client, settings.redis_key_prefix)
        return redis_invalidation.listen(settings.redis_url, bus.channel, cache, publish=bus.publish)
    if settings.effective_database_url.startswith("postgresql"):
        channel = sql_invalidation.channel_name(settings.redis_key_prefix)
        publisher = sql_invalidation.PostgresInvalidations(engine, channel)
        return sql_invalidation.listen_postgres(
            settings.effective_database_url, channel, cache, publish=publisher.publish
        )
    return None


def open_stores(settings: Settings) -> Stores:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    engine = create_engine(url, pool_size=settings.database_pool_size)
    redis_client = None
    if settings.redis_url:
        from threshold.adapters.redis.stores import connect as redis_connect

        redis_client = redis_connect(settings.redis_url)
    cache, invalidations = _session_cache(settings, engine, redis_client)
    fast = None
    if url.startswith("postgresql"):
        from threshold.adapters.sql.pg_fast import FastPool

        fast = FastPool(url, max_size=settings.database_pool_size)
    # Where the repositories' single statements run: on PostgreSQL the asyncpg pool, on a SQLite file
    # sqlite3 threads of their own (not for an in-memory database, which is the engine's connection's
    # alone, nor for a URL with options, such as a URI filename, which only the engine reads).
    runner: Runner | None = fast
    parsed = make_url(url)
    if fast is None and parsed.database and parsed.database != ":memory:" and not parsed.query:
        runner = SqliteRunner(parsed.database, size=settings.database_pool_size)
    statements = UnitAwareStatements(engine, runner) if runner is not None else None
    codes = SqlCodeRepo(engine)
    refresh_tokens: RefreshTokenRepo
    if fast is not None:
        from threshold.adapters.sql.pg_fast import PgRefreshTokenRepo

        refresh_tokens = PgRefreshTokenRepo(engine, fast)
    else:
        refresh_tokens = SqlRefreshTokenRepo(engine, statements=statements)
    purgeable: list[object] = [codes, refresh_tokens]
    sessions: SessionStore
    rate_limits: RateLimitStore
    marks: MarkStore
    ephemeral: EphemeralStore
    if redis_client is not None:
        from threshold.adapters.redis.stores import (
            RedisEphemeralStore,
            RedisMarkStore,
            RedisRateLimitStore,
            RedisSessionStore,
        )

        prefix = settings.redis_key_prefix
        sessions = RedisSessionStore(redis_client, prefix)
        rate_limits = RedisRateLimitStore(redis_client, prefix)
        marks = RedisMarkStore(redis_client, prefix)
        ephemeral = RedisEphemeralStore(redis_client, prefix)
    else:
        sql_sessions = SqlSessionStore(engine, statements=statements)
        sql_limits = SqlRateLimitStore(engine, statements=statements)
        sql_marks, sql_ephemeral = SqlMarkStore(engine), SqlEphemeralStore(engine)
        sessions, rate_limits, marks, ephemeral = sql_sessions, sql_limits, sql_marks, sql_ephemeral
        purgeable += [sql_sessions, sql_limits, sql_marks, sql_ephemeral]
    user_repo = SqlUserRepo(engine, statements=statements)
    return Stores(
        engine=engine,
        redis=redis_client,
        fast_pool=fast,
        runner=runner,
        statements=statements,
        users=user_repo,
        audit_log=SqlAuditLog(engine, statements=statements),
        sign_in_writes=SqlSignInWrites(engine, user_repo, statements=statements),
        sessions=sessions,
        rate_limits=rate_limits,
        marks=marks,
        ephemeral=ephemeral,
        factors=SqlFactorRepo(engine, statements=statements),
        tokens=SqlTokenRepo(engine),
        codes=codes,
        refresh_tokens=refresh_tokens,
        clients=SqlClientRepo(engine),
        consents=SqlConsentRepo(engine),
        signing_keys=SqlSigningKeyRepo(engine),
        orgs=SqlOrgRepo(engine, statements=statements),
        connections=SqlConnectionRepo(engine),
        cache=cache,
        invalidations=invalidations,
        purgeable=purgeable,
    )
