"""A storage outage is DependencyUnavailable (a 503 with Retry-After), never a driver error or a 401."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ISSUER, STRONG_PASSWORD, sqlite_template, unique_email
from tests.support import free_port
from threshold.adapters.redis.stores import RedisRateLimitStore, RedisSessionStore
from threshold.adapters.redis.stores import connect as redis_connect
from threshold.adapters.sql.db import Statements, UnitAwareStatements, create_engine
from threshold.adapters.sql.repos import (
    SqlAuditLog,
    SqlRateLimitStore,
    SqlSessionStore,
    SqlSignInWrites,
    SqlUserRepo,
)
from threshold.adapters.sql.sqlite_fast import SqliteRunner
from threshold.core.errors import DependencyUnavailable
from threshold.core.models import Aal, Amr, AuditEvent, AuditKind, SessionRecord, User
from threshold.core.secrets import digest, new_id, new_token
from threshold.services import build_services
from threshold.settings import Settings
from threshold.web.app import create_app

KEK = "tDqVbA6vVq5Wc9TR9nzdcXWZ5Zb0qf1l3p0k6VKw0Ro"


def _user() -> User:
    return User(
        id=new_id(),
        email="x@example.com",
        email_normalized="x@example.com",
        email_verified=False,
        disabled=False,
        created_at=time.time(),
    )


def _session() -> SessionRecord:
    now = time.time()
    return SessionRecord(
        digest=digest(new_token()),
        public_id=new_id(),
        user_id=new_id(),
        created_at=now,
        last_seen_at=now,
        idle_expires_at=now + 60,
        absolute_expires_at=now + 600,
        aal=Aal.AAL1,
        amr=(Amr.PASSWORD,),
        ip="127.0.0.1",
        user_agent="ua",
        device_label="",
    )


Call = Callable[[], Awaitable[Any]]


def _sql_calls(engine: Any, statements: Statements | None = None) -> dict[str, Call]:
    """Through SQLAlchemy, or with `statements` on a fast runner as stores.py wires them."""
    users, sessions = (
        SqlUserRepo(engine, statements=statements),
        SqlSessionStore(engine, statements=statements),
    )
    limits, audit = (
        SqlRateLimitStore(engine, statements=statements),
        SqlAuditLog(engine, statements=statements),
    )
    return {
        "users.get": lambda: users.get("x"),
        "users.get_by_email": lambda: users.get_by_email("x@example.com"),
        "users.add": lambda: users.add(_user(), None),
        "users.set_disabled": lambda: users.set_disabled("x", True),
        "users.record_network": lambda: users.record_network("x", "n", 1.0),
        "sessions.get": lambda: sessions.get("d"),
        "sessions.create": lambda: sessions.create(_session()),
        "sessions.delete_for_user": lambda: sessions.delete_for_user("x"),
        "limits.increment": lambda: limits.increment("k", window=60, now=time.time()),
        "limits.increment_all": lambda: limits.increment_all([("k", 60), ("l", 60)], now=time.time()),
        "limits.settle": lambda: limits.settle(refund=[("k", 60)], reset=[("l", 60)], now=time.time()),
        "audit.append": lambda: audit.append(AuditEvent(kind=AuditKind.LOGOUT, at=1.0)),
        "sign_in_writes.close": lambda: SqlSignInWrites(engine, users, statements=statements).close(
            "x",
            epoch=0,
            event=AuditEvent(kind=AuditKind.LOGIN_SUCCEEDED, at=1.0, user_id="x"),
            network="203.0.113.0/24",
            device="d",
        ),
    }


def _redis_calls(client: Any) -> dict[str, Call]:
    sessions, limits = RedisSessionStore(client, "p:"), RedisRateLimitStore(client, "p:")
    return {
        "sessions.get": lambda: sessions.get("d"),
        "sessions.create": lambda: sessions.create(_session()),
        "sessions.touch": lambda: sessions.touch("d", last_seen_at=1.0, idle_expires_at=2.0),
        "sessions.delete": lambda: sessions.delete("d"),
        "sessions.delete_for_user": lambda: sessions.delete_for_user("x"),
        "sessions.list_for_user": lambda: sessions.list_for_user("x"),
        "limits.get": lambda: limits.get("k", window=60, now=time.time()),
        "limits.increment": lambda: limits.increment("k", window=60, now=time.time()),
        "limits.settle": lambda: limits.settle(reset=[("k", 60)], now=time.time()),
    }


async def _failures(calls: dict[str, Call]) -> list[str]:
    """Each call that did not raise DependencyUnavailable, with what it did instead."""
    failures = []
    for name, call in calls.items():
        try:
            await call()
        except DependencyUnavailable:
            continue
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__module__}.{type(exc).__name__}")
        else:
            failures.append(f"{name}: no error")
    return failures


async def test_postgres_outage_is_dependency_unavailable() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    try:
        assert await _failures(_sql_calls(engine)) == []
    finally:
        await engine.dispose()


async def test_sqlite_unopenable_file_is_dependency_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "threshold.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    runner = SqliteRunner(str(path))
    try:
        assert await _failures(_sql_calls(engine)) == []
        # and on the fast runner, as stores.py wires a SQLite file's repositories
        assert await _failures(_sql_calls(engine, UnitAwareStatements(engine, runner))) == []
        # aiosqlite stops its worker thread without waiting; let it finish while the loop still runs.
        await asyncio.sleep(0.2)
    finally:
        await runner.close()
        await engine.dispose()


async def test_redis_outage_is_dependency_unavailable() -> None:
    client = redis_connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert await _failures(_redis_calls(client)) == []
    finally:
        await client.aclose()


# --- Through the app ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path / "threshold.db"
    shutil.copy(sqlite_template(tmp_path_factory), db)
    return db


@pytest.fixture
async def redis_down_client(tmp_path: Path, sqlite_db: Path) -> AsyncIterator[Any]:
    """The app on a healthy SQLite database with Redis configured on a port where nothing listens.

    Yields (client, email, session token): an account and a session made while storage was healthy.
    """
    db = sqlite_db
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "data_dir": tmp_path / "data",
        "key_encryption_key": KEK,
        "database_url": f"sqlite:///{db}",
    }
    healthy = build_services(Settings(**base))
    email = unique_email()
    try:
        user = await healthy.accounts.create_user(email=email, password=STRONG_PASSWORD)
        token = new_token()
        now = time.time()
        await SqlSessionStore(healthy.engine).create(
            SessionRecord(
                digest=digest(token),
                public_id=new_id(),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                idle_expires_at=now + 3600,
                absolute_expires_at=now + 7200,
                aal=Aal.AAL1,
                amr=(Amr.PASSWORD,),
                ip="203.0.113.7",
                user_agent="ua",
                device_label="",
            )
        )
    finally:
        await healthy.close()

    settings = Settings(**base, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_key_prefix="down:")
    services = build_services(settings)
    app = create_app(settings, services=services)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)), base_url=ISSUER
    )
    try:
        yield client, email, token
    finally:
        await client.aclose()
        await services.close()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["code"] == "temporarily_unavailable"
    assert body["status"] == 503


async def test_session_check_during_redis_outage_is_503(redis_down_client: Any) -> None:
    client, _, token = redis_down_client
    response = await client.get("/api/v1/session", headers={"Cookie": f"__Host-threshold_session={token}"})
    _assert_unavailable(response)
    forward = await client.get(
        "/api/v1/forward-auth", headers={"Cookie": f"__Host-threshold_session={token}"}
    )
    _assert_unavailable(forward)


async def test_login_during_redis_outage_is_503(redis_down_client: Any) -> None:
    client, email, token = redis_down_client
    for password in (STRONG_PASSWORD, "not the right password at all"):
        response = await client.post("/api/v1/login", json={"email": email, "password": password})
        _assert_unavailable(response)

    csrf = (await client.get("/api/v1/csrf")).json()["token"]
    with_cookie = await client.post(
        "/api/v1/login",
        json={"email": email, "password": STRONG_PASSWORD},
        headers={
            "Cookie": f"__Host-threshold_session={token}; __Host-threshold_csrf={csrf}",
            "X-CSRF-Token": csrf,
        },
    )
    _assert_unavailable(with_cookie)


async def test_a_503_tells_the_operator_its_cause_once_per_interval(
    redis_down_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The client is told nothing about the cause; the log says what was met, once per cause and path
    every OUTAGE_LOG_SECONDS (an outage answers every request 503)."""
    from threshold.web import errors

    client, email, _ = redis_down_client
    errors._outage_logged.clear()
    caplog.set_level(logging.WARNING, logger=errors.log.name)
    for _ in range(3):
        response = await client.post("/api/v1/login", json={"email": email, "password": STRONG_PASSWORD})
        _assert_unavailable(response)
        assert "redis" not in response.text.lower()
    lines = [r.getMessage() for r in caplog.records if r.name == errors.log.name]
    assert len(lines) == 1, lines
    assert lines[0].startswith("503 on POST /api/v1/login: redis.exceptions.ConnectionError: "), lines


async def test_readyz_during_redis_outage_is_503(redis_down_client: Any) -> None:
    client, _, _ = redis_down_client
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers.get("retry-after")
    assert (await client.get("/healthz")).status_code == 200


async def test_postgres_outage_on_the_asyncpg_fast_path_is_dependency_unavailable() -> None:
    from threshold.adapters.sql.factor_repos import SqlFactorRepo
    from threshold.adapters.sql.org_repos import SqlOrgRepo
    from threshold.adapters.sql.pg_fast import FastPool, PgRefreshTokenRepo
    from threshold.adapters.sql.repos import SqlAuditLog
    from threshold.core.models import AuditEvent, AuditKind
    from threshold.oidc.models import RefreshToken

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    engine = create_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    pool = FastPool(url)
    statements = UnitAwareStatements(engine, pool)  # as stores.py wires the repositories on PostgreSQL
    repo, users = PgRefreshTokenRepo(engine, pool), SqlUserRepo(engine, statements=statements)
    orgs, factors = SqlOrgRepo(engine, statements=statements), SqlFactorRepo(engine, statements=statements)
    audit = SqlAuditLog(engine, statements=statements)
    closing = SqlSignInWrites(engine, users, statements=statements)
    sessions = SqlSessionStore(engine, statements=statements)
    limits = SqlRateLimitStore(engine, statements=statements)
    token = RefreshToken(
        digest="d", family_id="f", parent_digest=None, client_id="c", user_id="u", session_digest="s",
        sid="i", scope="openid", auth_time=1.0, acr="0", amr=("pwd",), created_at=1.0, expires_at=2.0,
    )  # fmt: skip
    calls: dict[str, Call] = {
        "refresh.get": lambda: repo.get("d"),
        "refresh.rotate": lambda: repo.rotate("p", token, now=1.0, sealed=None),
        "users.get": lambda: users.get("u"),
        "users.get_by_email": lambda: users.get_by_email("u@example.com"),
        "users.get_password": lambda: users.get_password("u"),
        "users.get_with_password": lambda: users.get_with_password("u@example.com"),
        "users.credential_epoch": lambda: users.credential_epoch("u"),
        "users.remember_device": lambda: users.remember_device("u", "d", 1.0),
        "users.record_network": lambda: users.record_network("u", "n", 1.0),
        "orgs.get_domain": lambda: orgs.get_domain("example.com"),
        "orgs.memberships_of": lambda: orgs.memberships_of("u"),
        "factors.second_factors": lambda: factors.second_factors("u"),
        "audit.append": lambda: audit.append(AuditEvent(kind=AuditKind.LOGIN_SUCCEEDED, at=1.0)),
        "sessions.create": lambda: sessions.create(_session()),
        "limits.increment_all": lambda: limits.increment_all([("k", 60), ("l", 60)], now=time.time()),
        "limits.settle": lambda: limits.settle(refund=[("k", 60)], reset=[("l", 60)], now=time.time()),
        "sign_in_writes.close": lambda: closing.close(
            "u",
            epoch=0,
            event=AuditEvent(kind=AuditKind.LOGIN_SUCCEEDED, at=1.0, user_id="u"),
            network="203.0.113.0/24",
            device="d",
        ),
    }
    try:
        assert await _failures(calls) == []
    finally:
        await pool.close()
        await engine.dispose()
