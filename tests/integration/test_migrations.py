"""Alembic migrations on empty SQLite and PostgreSQL databases: head, down to base and back, no drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import asyncpg_url
from threshold.adapters.sql.db import create_engine
from threshold.adapters.sql.migrate import (
    _config,
    current_revision,
    downgrade,
    head_revision,
    release_revisions,
    upgrade,
)
from threshold.adapters.sql.schema import metadata

APP_TABLES = {t.name for t in metadata.sorted_tables}


@pytest.fixture(params=("sqlite", "postgres"))
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return asyncpg_url(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
async def empty_engine(empty_url: str) -> Any:
    engine = create_engine(empty_url)
    yield engine
    await engine.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)


async def _schema_drift(engine: AsyncEngine) -> list[Any]:
    def compare(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "target_metadata": metadata}
        )
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrade_from_empty_reaches_head(empty_engine: AsyncEngine) -> None:
    head = head_revision()
    assert head is not None
    assert await current_revision(empty_engine) is None
    assert not await _tables(empty_engine) & APP_TABLES

    await upgrade(empty_engine)

    assert await current_revision(empty_engine) == head
    assert await _tables(empty_engine) >= APP_TABLES


async def test_migrated_schema_matches_metadata(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    assert await _schema_drift(empty_engine) == []


async def test_downgrade_to_base_then_upgrade_again(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    await downgrade(empty_engine, "base")
    assert await current_revision(empty_engine) is None
    assert not await _tables(empty_engine) & APP_TABLES

    await upgrade(empty_engine)
    assert await current_revision(empty_engine) == head_revision()
    assert await _tables(empty_engine) >= APP_TABLES
    assert await _schema_drift(empty_engine) == []


async def test_upgrade_is_idempotent(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    await upgrade(empty_engine)
    assert await current_revision(empty_engine) == head_revision()


def test_the_schema_check_knows_the_revisions_alembic_knows() -> None:
    """The check reads the migration files without Alembic (a fifth of a command's start): the same
    history, oldest first, and the same head as Alembic's own ScriptDirectory."""
    script = ScriptDirectory.from_config(_config())
    assert release_revisions() == tuple(r.revision for r in reversed(list(script.walk_revisions())))
    assert head_revision() == script.get_current_head()


async def _alembic_current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def test_the_current_revision_is_alembics_at_every_step(empty_engine: AsyncEngine) -> None:
    assert await current_revision(empty_engine) is None
    for revision in release_revisions()[:3]:
        await upgrade(empty_engine, revision)
        assert await current_revision(empty_engine) == await _alembic_current(empty_engine) == revision
    await downgrade(empty_engine, "base")
    assert await current_revision(empty_engine) is None
    assert await _alembic_current(empty_engine) is None
