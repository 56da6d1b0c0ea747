"""A SCIM token is usable only by whoever was shown it: what the database keeps is its SHA-256 digest,
never the token, so a read of the database (a backup, a replica) gives no way into an organization's
people."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from tests.scim.conftest import ScimOrg
from threshold.adapters.sql import schema as t


async def test_the_token_is_kept_only_as_its_digest(scim: ScimOrg) -> None:
    assert (await scim.get("/Users")).status_code == 200  # the token works (and its use is recorded)
    async with scim.services.engine.connect() as conn:
        rows = (await conn.execute(select(t.scim_tokens))).mappings().all()
    stored = [dict(row) for row in rows if row["org_id"] == scim.org.id]
    assert len(stored) == 1
    assert all(scim.token not in str(value) for value in stored[0].values())
    assert hashlib.sha256(scim.token.encode()).hexdigest() in stored[0].values()
