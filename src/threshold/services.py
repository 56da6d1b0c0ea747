"""Wiring: builds the adapters and core services from Settings (used by the web app and the CLI)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.breach import HttpRangeSource
from threshold.adapters.kek import load_or_create_kek
from threshold.adapters.mail.queue import MailWorker, OutboxTransport, SmtpTransport, SqlMailQueue, Transport
from threshold.adapters.redis import invalidation as redis_invalidation
from threshold.adapters.redis.stores import (
    RedisEphemeralStore,
    RedisMarkStore,
    RedisRateLimitStore,
    RedisSessionStore,
)
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.adapters.sql import invalidation as sql_invalidation
from threshold.adapters.sql.db import create_engine
from threshold.adapters.sql.factor_repos import SqlEphemeralStore, SqlFactorRepo
from threshold.adapters.sql.oidc_repos import (
    SqlClientRepo,
    SqlCodeRepo,
    SqlConsentRepo,
    SqlMarkStore,
    SqlRefreshTokenRepo,
    SqlSigningKeyRepo,
)
from threshold.adapters.sql.pg_fast import FastPool, PgRefreshTokenRepo, PgUserRepo
from threshold.adapters.sql.repos import SqlAuditLog, SqlRateLimitStore, SqlSessionStore, SqlUserRepo
from threshold.adapters.sql.token_repos import SqlTokenRepo
from threshold.core.accounts import Accounts
from threshold.core.audit import Auditor
from threshold.core.clock import Clock, SystemClock
from threshold.core.crypto import SecretBox
from threshold.core.email import EmailFlows
from threshold.core.errors import DependencyUnavailable
from threshold.core.flows.engine import build_engine
from threshold.core.flows.factors import Factors
from threshold.core.flows.recovery import Recovery
from threshold.core.flows.signin import SignIn
from threshold.core.flows.stepup import StepUp
from threshold.core.models import AuditKind
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.ports import EphemeralStore, Invalidations, RateLimitStore, SessionStore, UserRepo
from threshold.core.session_cache import (
    InvalidatingSessionStore,
    InvalidatingUserRepo,
    Invalidator,
    SessionCache,
    SessionCheck,
)
from threshold.core.sessions import SessionService
from threshold.oidc.client_cache import CachedClientRepo
from threshold.oidc.keys import KeyRing
from threshold.oidc.ports import MarkStore
from threshold.oidc.provider import Provider
from threshold.oidc.tokens import ID_TOKEN_LIFETIME, MAX_ACCESS_TOKEN_LIFETIME
from threshold.settings import Settings

log = logging.getLogger(__name__)

SECURITY_EVENTS = Counter(
    "threshold_security_events_total", "Audited security events (signups, logins, revocations...)", ["kind"]
)


def count_security_event(kind: AuditKind) -> None:
    SECURITY_EVENTS.labels(kind=kind.value).inc()


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    redis: aioredis.Redis | None
    users: UserRepo
    audit_log: SqlAuditLog
    session_store: SessionStore
    rate_limits: RateLimitStore
    hasher: PasswordHasher
    sessions: SessionService
    session_check: SessionCheck
    accounts: Accounts
    factors: Factors
    signin: SignIn
    stepup: StepUp
    recovery: Recovery
    email: EmailFlows
    mail_queue: SqlMailQueue
    mail_worker: MailWorker
    provider: Provider
    marks: MarkStore
    purgeable: list[object]
    kek: bytes
    fast_pool: FastPool | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def check_ready(self) -> dict[str, str]:
        """Whether each dependency answers; raises DependencyUnavailable naming none of them."""
        from sqlalchemy import text

        from threshold.adapters.redis.stores import translate_errors as redis_errors
        from threshold.adapters.sql.db import translate_errors as sql_errors

        status = {"database": "ok"}
        with sql_errors():
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        if self.redis is not None:
            with redis_errors():
                await self.redis.ping()
            status["redis"] = "ok"
        return status

    def start_sweeper(self, interval: float = 60.0) -> None:
        """Purge expired sessions and counters in bounded batches, off the request path."""
        self._tasks.append(asyncio.create_task(self._sweep_forever(interval), name="threshold-sweeper"))

    def start_invalidation_listener(self) -> None:
        """Feed this process's session cache from every process's revocations (Redis or PostgreSQL)."""
        cache = self.session_check.cache
        if not cache.enabled:
            return
        settings = self.settings
        # The heartbeat goes out as every invalidation does, so that it proves the path they take.
        if settings.redis_url and self.redis is not None:
            bus = redis_invalidation.RedisInvalidations(self.redis, settings.redis_key_prefix)
            listener = redis_invalidation.listen(settings.redis_url, bus.channel, cache, publish=bus.publish)
        elif settings.effective_database_url.startswith("postgresql"):
            channel = sql_invalidation.channel_name(settings.redis_key_prefix)
            publisher = sql_invalidation.PostgresInvalidations(self.engine, channel)
            listener = sql_invalidation.listen_postgres(
                settings.effective_database_url, channel, cache, publish=publisher.publish
            )
        else:
            return  # SQLite: the change file is probed on every check, nothing to run
        self._tasks.append(asyncio.create_task(listener, name="threshold-invalidation"))

    def start_mail_worker(self) -> None:
        self._tasks.append(asyncio.create_task(self.mail_worker.run(), name="threshold-mail"))

    async def sweep_once(self) -> int:
        now = self.clock.now()
        purged = 0
        for store in self.purgeable:
            purge = getattr(store, "purge_expired", None)
            if purge is None:
                continue
            while True:
                count: int = await purge(now=now)
                purged += count
                if count == 0:
                    break
                await asyncio.sleep(0)
        return purged

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_once()
                await self.provider.sweep()
                await self.recovery.execute_due_recoveries()
            except DependencyUnavailable:
                log.warning("sweeper: storage unavailable, retrying later")
            except Exception:
                log.exception("sweeper failed")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.email.drain()
        self.hasher.close()
        if self.fast_pool is not None:
            await self.fast_pool.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


class _NoInvalidations:
    async def publish(self, message: str) -> None:
        return None


def _session_cache(
    settings: Settings, engine: AsyncEngine, redis_client: aioredis.Redis | None
) -> tuple[SessionCache, Invalidations]:
    """The process-local session cache and the feed that keeps every process's copy exact."""
    size, ttl = settings.session.cache_entries, settings.session.cache_ttl
    if redis_client is not None:
        bus: Invalidations = redis_invalidation.RedisInvalidations(redis_client, settings.redis_key_prefix)
        return SessionCache(max_entries=size, max_age=ttl), bus
    url = settings.effective_database_url
    if url.startswith("postgresql"):
        channel = sql_invalidation.channel_name(settings.redis_key_prefix)
        return SessionCache(max_entries=size, max_age=ttl), sql_invalidation.PostgresInvalidations(
            engine, channel
        )
    path = sql_invalidation.change_file_for(url)
    if path is None:  # in-memory SQLite: one connection, one process, nothing to share
        return SessionCache(max_entries=0, max_age=0), _NoInvalidations()
    change_file = sql_invalidation.ChangeFile(path)
    return SessionCache(max_entries=size, max_age=ttl, probe=change_file.changed), change_file


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    kek = load_or_create_kek(settings.data_dir, settings.key_encryption_key)
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url, pool_size=settings.database_pool_size)
    redis_client = redis_connect(settings.redis_url) if settings.redis_url else None
    cache, bus = _session_cache(settings, engine, redis_client)
    invalidator = Invalidator(cache, bus)
    fast = (
        FastPool(settings.effective_database_url, max_size=settings.database_pool_size)
        if settings.effective_database_url.startswith("postgresql")
        else None
    )
    sql_users = PgUserRepo(engine, fast) if fast is not None else SqlUserRepo(engine)
    users: UserRepo = InvalidatingUserRepo(sql_users, invalidator)
    audit_log = SqlAuditLog(engine)
    session_store: SessionStore
    rate_limits: RateLimitStore
    marks: MarkStore
    ephemeral: EphemeralStore
    codes = SqlCodeRepo(engine)
    refresh_tokens = PgRefreshTokenRepo(engine, fast) if fast is not None else SqlRefreshTokenRepo(engine)
    purgeable: list[object] = [codes, refresh_tokens]
    if redis_client is not None:
        session_store = RedisSessionStore(redis_client, settings.redis_key_prefix)
        rate_limits = RedisRateLimitStore(redis_client, settings.redis_key_prefix)
        marks = RedisMarkStore(redis_client, settings.redis_key_prefix)
        ephemeral = RedisEphemeralStore(redis_client, settings.redis_key_prefix)
    else:
        sql_sessions, sql_limits, sql_marks = (
            SqlSessionStore(engine),
            SqlRateLimitStore(engine),
            SqlMarkStore(engine),
        )
        sql_ephemeral = SqlEphemeralStore(engine)
        session_store, rate_limits, marks, ephemeral = sql_sessions, sql_limits, sql_marks, sql_ephemeral
        purgeable += [sql_sessions, sql_limits, sql_marks, sql_ephemeral]
    hasher = PasswordHasher(settings.argon2)
    range_source = (
        HttpRangeSource(settings.password.range_query_url, timeout=settings.password.range_query_timeout)
        if settings.password.range_query_url
        else None
    )
    policy = PasswordPolicy(
        settings.password, product_name=settings.theme.product_name, range_source=range_source
    )
    session_store = InvalidatingSessionStore(session_store, invalidator)
    sessions = SessionService(session_store, clock, settings.session)
    auditor = Auditor(audit_log, clock, observer=count_security_event)
    box = SecretBox(kek)
    engine_ = build_engine(
        settings=settings,
        users=users,
        factor_repo=SqlFactorRepo(engine),
        ephemeral=ephemeral,
        rate_limits=rate_limits,
        sessions=sessions,
        hasher=hasher,
        auditor=auditor,
        clock=clock,
        box=box,
    )
    factors = engine_.factors
    accounts = Accounts(
        users=users,
        sessions=sessions,
        hasher=hasher,
        policy=policy,
        throttle=engine_.throttle,
        auditor=auditor,
        clock=clock,
        signup_enabled=settings.signup_enabled,
        password=engine_.password,
        stepup=engine_.stepup,
        signin=engine_.signin,
    )
    keys = KeyRing(
        SqlSigningKeyRepo(engine),
        box,
        clock,
        rotation_interval=settings.oidc.key_rotation_interval,
        max_token_lifetime=max(MAX_ACCESS_TOKEN_LIFETIME, ID_TOKEN_LIFETIME),
    )
    session_check = SessionCheck(
        sessions=sessions,
        accounts=accounts,
        cache=cache,
        clock=clock,
        touch_interval=settings.session.touch_interval,
    )
    provider = Provider(
        issuer=settings.issuer,
        settings=settings.oidc,
        clients=CachedClientRepo(SqlClientRepo(engine), cache, invalidator),
        keys=keys,
        codes=codes,
        refresh_tokens=refresh_tokens,
        consents=SqlConsentRepo(engine),
        marks=marks,
        sessions=session_store,
        users=users,
        auditor=auditor,
        clock=clock,
        box=box,
        session_lookup=session_check.lookup,
    )
    mail_queue = SqlMailQueue(engine, clock, settings.theme, keep_sent_bodies=settings.development)
    transport: Transport = SmtpTransport(settings.smtp_url) if settings.smtp_url else OutboxTransport()
    mail_worker = MailWorker(
        mail_queue, transport, sender=settings.sender, max_attempts=settings.email.max_attempts
    )
    email = EmailFlows(
        users=users,
        tokens=SqlTokenRepo(engine),
        mail=mail_queue,
        counters=rate_limits,
        sessions=sessions,
        factors=factors,
        signin=engine_.signin,
        hasher=hasher,
        policy=policy,
        auditor=auditor,
        clock=clock,
        settings=settings.email,
        issuer=settings.issuer,
        product_name=settings.theme.product_name,
        revoke_tokens=provider.revoke_user_tokens,
    )
    auditor.subscribe(email.on_event)
    accounts.attach_email(email, verification=settings.email.verification)
    engine_.signin.attach_email(email, verification=settings.email.verification)
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        redis=redis_client,
        users=users,
        audit_log=audit_log,
        session_store=session_store,
        rate_limits=rate_limits,
        hasher=hasher,
        sessions=sessions,
        session_check=session_check,
        accounts=accounts,
        factors=factors,
        signin=engine_.signin,
        stepup=engine_.stepup,
        recovery=engine_.recovery,
        email=email,
        mail_queue=mail_queue,
        mail_worker=mail_worker,
        provider=provider,
        marks=marks,
        purgeable=purgeable,
        kek=kek,
        fast_pool=fast,
    )
