"""An identity provider's initial sync fills `scim_resources` from empty in a minute, before autovacuum
has analyzed it: the lookup each creation makes (Entra's `userName eq` filter, the uniqueness check) must
still use the unique key, not read every row of the organization (adapters.sql.db.FreshStatistics)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import create_engine, reading
from threshold.adapters.sql.migrate import upgrade
from threshold.adapters.sql.scim_repos import SqlScimResourceRepo, find_statement
from threshold.core.scim.resources import Narrowing, ScimRecord
from threshold.core.secrets import new_id
from threshold.settings import Settings

pytestmark = pytest.mark.postgres


def _indexes(plan: Any) -> list[tuple[str, str]]:
    """(index name, index condition) of every index scan in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    if "Index Name" in plan:
        found.append((plan["Index Name"], plan.get("Index Cond", "")))
    for child in plan.get("Plans", []):
        found += _indexes(child)
    return found


async def test_a_user_name_lookup_uses_the_unique_key_while_a_fresh_table_fills(fresh_pg_url: str) -> None:
    engine = create_engine(Settings(database_url=fresh_pg_url).effective_database_url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(
                t.organizations.insert().values(id="org1", slug="org1", name="Org", created_at=0)
            )
        repo = SqlScimResourceRepo(engine)
        for n in range(300):
            await repo.add(
                ScimRecord(
                    id=new_id(),
                    org_id="org1",
                    resource_type="User",
                    name_key=f"person-{n}@example.com",
                    document="{}",
                    version=1,
                    created=float(n),
                    last_modified=float(n),
                )
            )
        statement = find_statement("org1", "User", Narrowing(name_keys=frozenset({"person-7@example.com"})))
        assert statement is not None
        sql = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        async with reading(engine) as conn:
            plan = (await conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).scalar_one()
        scans = _indexes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
        assert [name for name, _ in scans] == ["uq_scim_resources_name"], scans
        assert "name_key" in scans[0][1], scans
        assert [
            r.name_key
            for r in await repo.find("org1", "User", Narrowing(name_keys=frozenset({"person-7@example.com"})))
        ] == ["person-7@example.com"]
    finally:
        await engine.dispose()
