"""Alembic, driven programmatically: `threshold migrate`, and the schema-version check at start."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql.db import translate_errors


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("threshold.adapters.sql") / "migrations"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every migration up to `revision` on the engine's database."""
    config = _config()

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    with translate_errors():
        async with engine.begin() as conn:
            await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    config = _config()

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Any) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    with translate_errors():
        async with engine.connect() as conn:
            return await conn.run_sync(read)


class SchemaNotCurrent(Exception):
    """The database is not at the revision this release runs on: never migrated, behind, or newer."""

    def __init__(self, *, database: str, current: str | None, expected: str | None, known: bool) -> None:
        self.database = database
        """Where it is, printable (display_url: no password)."""
        self.current = current
        self.expected = expected
        self.known = known
        """Whether `current` is one of this release's revisions (False: a newer release migrated it)."""
        super().__init__(self.advice)

    @property
    def advice(self) -> str:
        """One line for the operator: what is wrong and what to do."""
        where = f"the database at {self.database}"
        if self.current is None:
            return f"{where} has no schema; run `threshold migrate` first"
        if self.known:
            return (
                f"{where} has an old schema (revision {self.current}, expected {self.expected}); "
                "run `threshold migrate` first"
            )
        return (
            f"{where} is at schema revision {self.current}, which this release does not know (expected "
            f"{self.expected}): a newer release migrated it; run that release"
        )


async def check_schema(engine: AsyncEngine) -> None:
    """Raise SchemaNotCurrent unless the database is at this release's head revision.

    A SQLite file that does not exist yet is reported as never migrated, and is not created.
    """
    script = ScriptDirectory.from_config(_config())
    expected = script.get_current_head()
    if _missing_sqlite_file(engine.url):
        current = None
    else:
        with _quiet("alembic.runtime.migration"):  # "Context impl ..." on every command otherwise
            current = await current_revision(engine)
    if current != expected:
        raise SchemaNotCurrent(
            database=display_url(engine.url),
            current=current,
            expected=expected,
            known=current is None or current in {r.revision for r in script.walk_revisions()},
        )


def _missing_sqlite_file(url: URL) -> bool:
    """Whether the URL names a SQLite file that does not exist (connecting would create it)."""
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or path in ("", ":memory:") or path.startswith("file:"):
        return False
    return not Path(path).exists()


def display_url(url: str | URL) -> str:
    """A database URL safe to print: no password, no query parameter that could carry one, no driver."""
    parsed = make_url(url)
    safe = URL.create(
        parsed.get_backend_name(),
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query={k: v for k, v in parsed.query.items() if "pass" not in k.lower()},
    )
    return safe.render_as_string(hide_password=False)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(level)
