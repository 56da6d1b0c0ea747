"""Shared fixtures: real SQLite, PostgreSQL and Redis; the app in-process through httpx.

With CI=true, a test that needs PostgreSQL, Redis or Chromium fails when the service is missing;
elsewhere it is skipped with the reason (`tests.support.need`).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    REDIS_URL,
    create_pg_database,
    delete_redis_prefix,
    drop_pg_database,
    new_redis_prefix,
    require_redis,
)
from threshold.services import Services, build_services
from threshold.settings import Settings

ISSUER = "https://auth.threshold.test"

# The suites that start servers, browsers and CLI processes run first: `make test` spreads whole files
# over two workers (pytest-xdist, --dist loadfile), and a long file handed out last would run alone at
# the end while the other core idles. The rest keep their order.
SLOW_FIRST = ("e2e", "blackbox", "scaleout", "backchannel", "faults", "observability", "email", "scim")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(Path(__file__).parent).parts
        return SLOW_FIRST.index(parts[0]) if parts[0] in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: within a rank, the collection order


BACKENDS = ("sqlite", "postgres+redis")


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database shared by the session (tables are emptied per test)."""
    url = create_pg_database()
    settings = Settings(database_url=url, key_encryption_key=_KEK)

    async def migrate() -> None:
        from threshold.adapters.sql.db import create_engine
        from threshold.adapters.sql.migrate import upgrade

        engine = create_engine(settings.effective_database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    yield url
    drop_pg_database(url)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty, unmigrated PostgreSQL database of this test's own."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis(REDIS_URL)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = new_redis_prefix("thtest")
    yield prefix
    delete_redis_prefix(prefix, redis_url)


# --- SQLite -----------------------------------------------------------------------------------

_KEK = "tDqVbA6vVq5Wc9TR9nzdcXWZ5Zb0qf1l3p0k6VKw0Ro"
_sqlite_template: Path | None = None


def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once; each test copies it."""
    global _sqlite_template
    if _sqlite_template is None:
        path = tmp_path_factory.mktemp("template") / "threshold.db"

        async def migrate() -> None:
            from threshold.adapters.sql.db import create_engine
            from threshold.adapters.sql.migrate import upgrade

            engine = create_engine(f"sqlite+aiosqlite:///{path}")
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        _sqlite_template = path
    return _sqlite_template


# --- Settings and services per backend --------------------------------------------------------


async def _truncate_pg(services: Services) -> None:
    from sqlalchemy import text

    from threshold.adapters.sql.schema import metadata

    tables = ", ".join(table.name for table in metadata.sorted_tables)
    async with services.engine.begin() as conn:
        # audit_events refuses DELETE (append-only trigger); TRUNCATE is the test-only way to empty it.
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Runs the test once per supported deployment: embedded SQLite, and PostgreSQL + Redis."""
    value: str = request.param
    return value


@pytest.fixture
def make_settings(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings for this test's backend; keyword overrides are passed to Settings."""
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "data_dir": tmp_path / "data",
        "key_encryption_key": _KEK,
    }
    if backend == "sqlite":
        db = tmp_path / "threshold.db"
        shutil.copy(sqlite_template(tmp_path_factory), db)
        base["database_url"] = f"sqlite:///{db}"
    else:
        base["database_url"] = request.getfixturevalue("pg_url")
        request.getfixturevalue("redis_url")
        base["redis_url"] = REDIS_URL
        base["redis_key_prefix"] = request.getfixturevalue("redis_prefix")

    def make(**overrides: Any) -> Settings:
        return Settings(**{**base, **overrides})

    return make


@pytest.fixture
async def services_factory(backend: str) -> AsyncIterator[Callable[[Settings], Services]]:
    """Builds Services for a Settings object; closes them all at the end of the test."""
    built: list[Services] = []

    def make(settings: Settings) -> Services:
        services = build_services(settings)
        built.append(services)
        return services

    yield make
    for services in built:
        await services.close()


@pytest.fixture
async def services(
    backend: str, make_settings: Callable[..., Settings], services_factory: Callable[[Settings], Services]
) -> Services:
    svc = services_factory(make_settings())
    if backend != "sqlite":
        await _truncate_pg(svc)
    return svc


@pytest.fixture
async def client_factory(
    backend: str,
    make_settings: Callable[..., Settings],
    services_factory: Callable[[Settings], Services],
) -> AsyncIterator[Callable[..., Any]]:
    """make(**settings_overrides) -> an httpx.AsyncClient on a fresh app (the browser client)."""
    from threshold.web.app import create_app

    clients: list[httpx.AsyncClient] = []
    truncated = False

    async def make(**overrides: Any) -> httpx.AsyncClient:
        nonlocal truncated
        settings = make_settings(**overrides)
        svc = services_factory(settings)
        if backend != "sqlite" and not truncated:
            await _truncate_pg(svc)
            truncated = True
        app = create_app(settings, services=svc)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url=ISSUER,
            headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
        )
        client.app = app  # type: ignore[attr-defined]
        client.services = svc  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(client_factory: Callable[..., Any]) -> httpx.AsyncClient:
    result: httpx.AsyncClient = await client_factory()
    return result


# --- Helpers ----------------------------------------------------------------------------------

STRONG_PASSWORD = "plum orbit candle harbor 42"


async def csrf(client: httpx.AsyncClient) -> str:
    """Fetch the CSRF token (and cookie) as a browser front end would."""
    response = await client.get("/api/v1/csrf")
    assert response.status_code == 200
    token: str = response.json()["token"]
    client.headers["X-CSRF-Token"] = token
    return token


async def signup(client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
    await csrf(client)
    return await client.post("/api/v1/signup", json={"email": email, "password": password})


async def login(client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
    await csrf(client)
    return await client.post("/api/v1/login", json={"email": email, "password": password})


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{secrets.token_hex(4)}@example.com"
