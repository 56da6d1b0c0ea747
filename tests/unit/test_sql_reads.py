"""Reads go through `threshold.adapters.sql.db.reading` (autocommit on PostgreSQL: no BEGIN and ROLLBACK
round trips, no transaction held open between statements); writes through `engine.begin()`. A module
that opened `engine.connect()` itself would quietly lose the first; the test reads the source."""

from __future__ import annotations

import ast
from pathlib import Path

import threshold

SOURCE = Path(threshold.__file__).parent

ALLOWED = {
    "adapters/sql/db.py",  # `reading` itself
    "adapters/sql/migrate.py",  # Alembic's migrations run on a connection of their own
}


def test_connections_for_reads_come_from_reading() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "connect"
                and not node.args
                and not node.keywords
                and name not in ALLOWED
                and "engine" in ast.unparse(node.func.value)
            ):
                found.append(f"{name}:{node.lineno}")
    assert found == [], f"open reads with threshold.adapters.sql.db.reading: {found}"
