"""Reads go through `threshold.adapters.sql.db.reading` (autocommit on PostgreSQL: no BEGIN and ROLLBACK
round trips, no transaction held open between statements), writes through `writing`; both join the
task's unit of work when there is one. A module that opened `engine.connect()` or `engine.begin()`
itself would quietly lose the first, and inside a unit would wait on the unit's own uncommitted rows
(a foreign key to an account it is creating): the test reads the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import threshold

SOURCE = Path(threshold.__file__).parent

ALLOWED = {
    "adapters/sql/db.py",  # `reading`, `writing` and `unit_of_work` themselves
    "adapters/sql/migrate.py",  # Alembic's migrations run on a connection of their own
    "client/bff_stores.py",  # the BFF's own database (threshold.client): no unit of Threshold's reaches it
}


def test_connections_come_from_reading_and_writing() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("connect", "begin")
                and not node.args
                and not node.keywords
                and name not in ALLOWED
                and "engine" in ast.unparse(node.func.value)
            ):
                found.append(f"{name}:{node.lineno}")
    assert found == [], f"use threshold.adapters.sql.db.reading / writing: {found}"


def test_the_asyncpg_path_refuses_a_statement_that_needs_compiling_per_call() -> None:
    # pg_fast caches one compiled form per statement object: an expanding IN (...) has no fixed SQL.
    from sqlalchemy import bindparam, select

    from threshold.adapters.sql import schema as t
    from threshold.adapters.sql.pg_fast import compiled

    with pytest.raises(ValueError, match="compiling per call"):
        compiled(select(t.users.c.id).where(t.users.c.id.in_(bindparam("ids", expanding=True))))
    assert compiled(select(t.users.c.id).where(t.users.c.id == bindparam("user_id"))).names == ("user_id",)
