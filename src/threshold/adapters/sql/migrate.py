"""Alembic, driven programmatically: `threshold migrate`, and the schema-version check at start.

The check (every server's start, every command but `migrate`) does not import Alembic: with Mako and
Pygments, which it brings, that is a fifth of a command's start on a small machine. This release's
revisions are read from the migration files' `revision` and `down_revision` lines, the database's from
the `alembic_version` table Alembic keeps; tests/integration/test_migrations.py holds both to Alembic's
own answers.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, inspect, select, table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql.db import translate_errors

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "alembic_version"
_REVISION_LINE = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]+)"|None)\s*$', re.MULTILINE)


def _scripts() -> Path:
    return Path(str(resources.files("threshold.adapters.sql") / "migrations"))


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_scripts()))
    return config


@cache
def release_revisions() -> tuple[str, ...]:
    """This release's schema revisions, oldest first (one line of history, as Threshold keeps it).

    Raises:
        RuntimeError: a migration file without its two lines, or a history that branches or breaks.
    """
    parent_of: dict[str, str | None] = {}
    for path in sorted((_scripts() / "versions").glob("*.py")):
        if path.name.startswith("_"):
            continue
        found = dict((m.group(1), m.group(2)) for m in _REVISION_LINE.finditer(path.read_text("utf-8")))
        if "revision" not in found or found["revision"] is None or "down_revision" not in found:
            raise RuntimeError(f"{path.name}: no `revision = ...` and `down_revision = ...` lines")
        parent_of[found["revision"]] = found["down_revision"]
    child_of = {parent: child for child, parent in parent_of.items()}
    if len(child_of) != len(parent_of):
        raise RuntimeError("the migration history branches")
    order: list[str] = []
    current = child_of.get(None)
    while current is not None:
        order.append(current)
        current = child_of.get(current)
    if len(order) != len(parent_of):
        raise RuntimeError("the migration history is broken")
    return tuple(order)


def head_revision() -> str | None:
    revisions = release_revisions()
    return revisions[-1] if revisions else None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every migration up to `revision` on the engine's database."""
    from alembic import command

    config = _config()

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    with translate_errors():
        async with engine.begin() as conn:
            await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    config = _config()

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (what Alembic wrote in its version table), None if never migrated."""

    def read(connection: Any) -> str | None:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = (
            connection.execute(select(column("version_num")).select_from(table(VERSION_TABLE)))
            .scalars()
            .all()
        )
        if len(rows) > 1:
            raise RuntimeError(f"{VERSION_TABLE} names several revisions: {sorted(rows)}")
        return str(rows[0]) if rows else None

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
    expected = head_revision()
    current = None if _missing_sqlite_file(engine.url) else await current_revision(engine)
    if current != expected:
        raise SchemaNotCurrent(
            database=display_url(engine.url),
            current=current,
            expected=expected,
            known=current is None or current in release_revisions(),
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
