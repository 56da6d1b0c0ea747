"""Migration 0008: the refresh-token families stored before it become grants, revoked when every token of
the family is, so that access tokens minted from them after the upgrade find their grant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import asyncpg_url
from threshold.adapters.sql.db import create_engine
from threshold.adapters.sql.migrate import upgrade


@pytest.fixture(params=("sqlite", "postgres"))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
    return asyncpg_url(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(url)
    yield made
    await made.dispose()


def _token(digest: str, family: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "digest": digest,
        "family_id": family,
        "parent_digest": None,
        "client_id": "client-1",
        "user_id": "user-1",
        "session_digest": "s" * 64,
        "sid": "sid-1",
        "scope": "openid",
        "auth_time": 100.0,
        "acr": "aal1",
        "amr": "pwd",
        "created_at": 100.0,
        "expires_at": 1000.0,
        "used_at": None,
        "revoked_at": None,
    }
    row.update(values)
    return row


async def test_existing_families_become_grants(engine: AsyncEngine) -> None:
    await upgrade(engine, "0007")
    rows = [
        _token("a1", "live", used_at=150.0),
        _token("a2", "live", parent_digest="a1", created_at=150.0, expires_at=1200.0),
        _token("b1", "gone", revoked_at=300.0, used_at=200.0),
        _token("b2", "gone", revoked_at=310.0, created_at=200.0),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, email_normalized, email_verified, disabled, created_at) "
                "VALUES ('user-1', 'a@example.com', 'a@example.com', true, false, 1.0)"
            )
        )
        for row in rows:
            columns = ", ".join(row)
            await conn.execute(
                text(f"INSERT INTO refresh_tokens ({columns}) VALUES ({', '.join(':' + c for c in row)})"),
                row,
            )

    await upgrade(engine)

    async with engine.connect() as conn:
        grants = {
            r.id: r
            for r in (
                await conn.execute(
                    text(
                        "SELECT id, client_id, user_id, session_digest, created_at, expires_at, revoked_at "
                        "FROM oauth_grants"
                    )
                )
            ).all()
        }
    assert set(grants) == {"live", "gone"}
    live, gone = grants["live"], grants["gone"]
    assert (live.client_id, live.user_id, live.session_digest) == ("client-1", "user-1", "s" * 64)
    assert (live.created_at, live.expires_at, live.revoked_at) == (100.0, 1200.0, None)
    assert gone.revoked_at == 310.0
