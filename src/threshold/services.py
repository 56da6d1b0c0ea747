"""Wiring: builds the adapters and core services from Settings (used by the web app and the CLI)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.account_export import AccountExport
from threshold.adapters.backchannel import LogoutWorker, SqlLogoutQueue
from threshold.adapters.breach import HttpRangeSource
from threshold.adapters.dns import DnsTxtResolver
from threshold.adapters.feed_heartbeat import LAGS_AT_MOST
from threshold.adapters.kek import load_or_create_kek
from threshold.adapters.mail.queue import MailWorker, OutboxTransport, SmtpTransport, SqlMailQueue, Transport
from threshold.adapters.metrics import observe_audit_event
from threshold.adapters.sql.console_repos import SqlConsoleStore
from threshold.adapters.sql.db import Runner
from threshold.adapters.sql.deletion_repo import SqlDeletionRepo
from threshold.adapters.sql.repos import SqlAuditLog
from threshold.adapters.sql.scim_repos import SqlScimTokenRepo
from threshold.adapters.sso.oidc import OidcUpstream
from threshold.adapters.sso.saml import SamlUpstream
from threshold.adapters.stores import Stores, invalidation_listener, open_stores
from threshold.core.accounts import Accounts
from threshold.core.audit import Auditor
from threshold.core.clock import Clock, SystemClock
from threshold.core.console import Console
from threshold.core.crypto import SecretBox
from threshold.core.deletion import Deletions
from threshold.core.email import EmailFlows
from threshold.core.errors import DependencyUnavailable
from threshold.core.flows.engine import build_engine
from threshold.core.flows.factors import Factors
from threshold.core.flows.inventory import Inventory
from threshold.core.flows.recovery import Recovery
from threshold.core.flows.signin import SignIn
from threshold.core.flows.stepup import StepUp
from threshold.core.orgs.domain_cache import CachedOrgRepo
from threshold.core.orgs.ports import OrgRepo
from threshold.core.orgs.service import Organizations
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.ports import EphemeralStore, RateLimitStore, SessionStore, UserRepo
from threshold.core.provisioning import Provisioning
from threshold.core.revocation import AccessRevoker
from threshold.core.scim.token_cache import CachedScimTokenRepo
from threshold.core.scim.tokens import ScimTokenRepo
from threshold.core.session_cache import (
    InvalidatingSessionStore,
    InvalidatingUserRepo,
    Invalidator,
    SessionCheck,
)
from threshold.core.sessions import SessionService
from threshold.core.sso.connections import Connections, social_connection
from threshold.core.sso.policy import SsoGate
from threshold.core.sso.signin import SsoSignIn
from threshold.i18n import Catalogues, load_catalogues
from threshold.oidc.client_cache import CachedClientRepo
from threshold.oidc.keys import KeyRing
from threshold.oidc.ports import MarkStore
from threshold.oidc.provider import Provider
from threshold.oidc.tokens import ID_TOKEN_LIFETIME, MAX_ACCESS_TOKEN_LIFETIME
from threshold.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    redis: aioredis.Redis | None
    users: UserRepo
    audit_log: SqlAuditLog
    auditor: Auditor
    provisioning: Provisioning
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
    orgs: Organizations
    sso: SsoSignIn
    email: EmailFlows
    mail_queue: SqlMailQueue
    mail_worker: MailWorker
    revoker: AccessRevoker
    logout_queue: SqlLogoutQueue
    logout_worker: LogoutWorker
    provider: Provider
    scim_token_repo: ScimTokenRepo
    console: Console
    export: AccountExport
    deletions: Deletions
    catalogues: Catalogues
    marks: MarkStore
    purgeable: list[object]
    kek: bytes
    runner: Runner | None = None
    """The fast runner of single statements (stores.Stores.runner), closed with the services."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def check_ready(self) -> dict[str, str]:
        """Whether each dependency answers; raises DependencyUnavailable naming none of them."""
        from sqlalchemy import text

        from threshold.adapters.sql.db import reading
        from threshold.adapters.sql.db import translate_errors as sql_errors

        status = {"database": "ok"}
        with sql_errors():
            async with reading(self.engine) as conn:
                await conn.execute(text("SELECT 1"))
        if self.redis is not None:
            from threshold.adapters.redis.stores import translate_errors as redis_errors

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
        listener = invalidation_listener(self.settings, self.engine, self.redis, cache)
        if listener is not None:
            cache.expect_feed(LAGS_AT_MOST)  # before any revocation this process makes
            self._tasks.append(asyncio.create_task(listener, name="threshold-invalidation"))

    def start_mail_worker(self) -> None:
        self._tasks.append(asyncio.create_task(self.mail_worker.run(), name="threshold-mail"))

    def start_logout_worker(self) -> None:
        """Deliver the logout tokens queued for applications (OIDC Back-Channel Logout)."""
        self._tasks.append(asyncio.create_task(self.logout_worker.run(), name="threshold-backchannel"))

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
                await self.deletions.erase_due()
            except DependencyUnavailable:
                log.warning("sweeper: storage unavailable, retrying later")
            except Exception:
                log.exception("sweeper failed")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.email.drain()
        await self.logout_worker.aclose()
        self.hasher.close()
        if self.runner is not None:
            await self.runner.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    kek = load_or_create_kek(settings.data_dir, settings.key_encryption_key)
    stores = open_stores(settings)
    engine, redis_client, cache = stores.engine, stores.redis, stores.cache
    invalidator = Invalidator(cache, stores.invalidations)
    users: UserRepo = InvalidatingUserRepo(stores.users, invalidator)
    org_repo: OrgRepo = CachedOrgRepo(stores.orgs, cache, invalidator)
    audit_log, codes, refresh_tokens = stores.audit_log, stores.codes, stores.refresh_tokens
    rate_limits, marks, ephemeral, purgeable = (
        stores.rate_limits,
        stores.marks,
        stores.ephemeral,
        stores.purgeable,
    )
    hasher = PasswordHasher(settings.argon2)
    range_source = (
        HttpRangeSource(settings.password.range_query_url, timeout=settings.password.range_query_timeout)
        if settings.password.range_query_url
        else None
    )
    policy = PasswordPolicy(
        settings.password, product_name=settings.theme.product_name, range_source=range_source
    )
    session_store: SessionStore = InvalidatingSessionStore(stores.sessions, invalidator)
    sessions = SessionService(session_store, clock, settings.session)
    auditor = Auditor(audit_log, clock, observer=observe_audit_event)
    revoker = AccessRevoker(sessions=sessions, auditor=auditor)
    provisioning = Provisioning(
        users=users, factors=stores.factors, revoker=revoker, auditor=auditor, clock=clock
    )
    box = SecretBox(kek)
    engine_ = build_engine(
        settings=settings,
        users=users,
        factor_repo=stores.factors,
        ephemeral=ephemeral,
        rate_limits=rate_limits,
        sessions=sessions,
        hasher=hasher,
        auditor=auditor,
        clock=clock,
        box=box,
        revoker=revoker,
        orgs=org_repo,
        closing=stores.sign_in_writes,
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
        revoker=revoker,
    )
    keys = KeyRing(
        stores.signing_keys,
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
        clients=CachedClientRepo(stores.clients, cache, invalidator),
        keys=keys,
        codes=codes,
        refresh_tokens=refresh_tokens,
        consents=stores.consents,
        marks=marks,
        sessions=session_store,
        users=users,
        auditor=auditor,
        clock=clock,
        box=box,
        revoker=revoker,
        session_lookup=session_check.lookup,
    )
    logout_queue = SqlLogoutQueue(engine, clock, settings.backchannel, statements=stores.statements)
    provider.applications.attach_queue(logout_queue, logout_queue.wake)
    logout_worker = LogoutWorker(
        logout_queue, clients=provider.clients, minter=provider.minter, settings=settings.backchannel
    )
    purgeable = [*purgeable, logout_queue]
    catalogues = load_catalogues(settings.i18n.default_language, settings.i18n.catalog_dir)
    mail_queue = SqlMailQueue(
        engine,
        clock,
        settings.theme,
        catalogues,
        keep_sent_bodies=settings.development,
        statements=stores.statements,
    )
    transport: Transport = SmtpTransport(settings.smtp_url) if settings.smtp_url else OutboxTransport()
    mail_worker = MailWorker(
        mail_queue, transport, sender=settings.sender, max_attempts=settings.email.max_attempts
    )
    email = EmailFlows(
        users=users,
        tokens=stores.tokens,
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
        revoker=revoker,
    )
    auditor.subscribe(email.on_event)
    accounts.attach_email(email, verification=settings.email.verification)
    engine_.signin.attach_email(email, verification=settings.email.verification)
    orgs = Organizations(
        orgs=org_repo,
        users=users,
        resolver=DnsTxtResolver(
            settings.dns.nameservers, port=settings.dns.port, timeout=settings.dns.timeout
        ),
        mail=mail_queue,
        auditor=auditor,
        clock=clock,
        issuer=settings.issuer,
        sessions=sessions,
        revoker=revoker,
    )
    provider.with_organizations(org_repo)
    sso = _build_sso(
        settings=settings,
        stores=stores,
        users=users,
        org_repo=org_repo,
        signin=engine_.signin,
        sessions=sessions,
        ephemeral=ephemeral,
        box=box,
        auditor=auditor,
        clock=clock,
        revoker=revoker,
        provisioning=provisioning,
    )
    console = Console(store=SqlConsoleStore(engine), step_up=engine_.stepup, auditor=auditor, clock=clock)
    deletions = Deletions(
        repo=SqlDeletionRepo(engine),
        users=users,
        revoker=revoker,
        stepup=engine_.stepup,
        auditor=auditor,
        clock=clock,
        grace=settings.account.deletion_grace,
        counters=rate_limits if settings.redis_url else None,  # the database's go in the erasure itself
    )
    engine_.signin.attach_deletions(deletions)
    accounts.attach_deletions(deletions)
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        redis=redis_client,
        users=users,
        audit_log=audit_log,
        auditor=auditor,
        provisioning=provisioning,
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
        orgs=orgs,
        sso=sso,
        email=email,
        mail_queue=mail_queue,
        mail_worker=mail_worker,
        revoker=revoker,
        logout_queue=logout_queue,
        logout_worker=logout_worker,
        provider=provider,
        scim_token_repo=CachedScimTokenRepo(SqlScimTokenRepo(engine), cache, invalidator),
        console=console,
        deletions=deletions,
        catalogues=catalogues,
        export=AccountExport(
            users=users,
            factors=stores.factors,
            sessions=sessions,
            consents=provider.list_consents,
            orgs=orgs,
            connections=stores.connections,
            recovery=engine_.recovery,
            stepup=engine_.stepup,
            throttle=engine_.throttle,
            auditor=auditor,
            clock=clock,
        ),
        marks=marks,
        purgeable=purgeable,
        kek=kek,
        runner=stores.runner,
    )


def _build_sso(
    *,
    settings: Settings,
    stores: Stores,
    users: UserRepo,
    org_repo: OrgRepo,
    signin: SignIn,
    sessions: SessionService,
    ephemeral: EphemeralStore,
    box: SecretBox,
    auditor: Auditor,
    clock: Clock,
    revoker: AccessRevoker,
    provisioning: Provisioning,
) -> SsoSignIn:
    """Upstream sign-in: organizations' connections, social connections from Settings, and the
    `--require-sso` gate attached to the sign-in engine's completion."""
    saml = SamlUpstream(issuer=settings.issuer, clock=clock, skew=settings.sso.clock_skew)
    connections = Connections(
        connections=stores.connections,
        orgs=org_repo,
        saml=saml,
        box=box,
        auditor=auditor,
        clock=clock,
        issuer=settings.issuer,
        social=[social_connection(s, box, at=0.0) for s in settings.sso.social],
    )
    signin.attach_sso_gate(SsoGate(connections=connections, orgs=org_repo, auditor=auditor))
    return SsoSignIn(
        connections=connections,
        repo=stores.connections,
        orgs=org_repo,
        users=users,
        signin=signin,
        sessions=sessions,
        inventory=Inventory(users=users, factors=stores.factors, settings=settings.mfa),
        provisioning=provisioning,
        revoker=revoker,
        oidc=OidcUpstream(box=box, timeout=settings.sso.http_timeout, skew=settings.sso.clock_skew),
        saml=saml,
        ephemeral=ephemeral,
        auditor=auditor,
        clock=clock,
        issuer=settings.issuer,
        flow_lifetime=settings.sso.flow_lifetime,
        session_lifetime=settings.session.absolute_lifetime,
    )
