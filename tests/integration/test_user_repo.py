"""SqlUserRepo on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.repos import SqlUserRepo
from threshold.core.errors import EmailUnavailable
from threshold.core.models import PasswordCredential, User
from threshold.core.secrets import new_id


def _user(email: str, **changes: object) -> User:
    fields: dict[str, object] = {
        "id": new_id(),
        "email": email,
        "email_normalized": email.casefold(),
        "email_verified": False,
        "disabled": False,
        "created_at": 1_767_225_600.125,
    }
    fields.update(changes)
    return User(**fields)  # type: ignore[arg-type]


async def test_add_then_get_and_get_by_email(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    user = _user("Ada.Lovelace@Example.com", email_verified=True, mfa_required=True)
    credential = PasswordCredential(
        user_id=user.id, hash="$argon2id$v=19$m=19456,t=2,p=1$x$y", updated_at=5.5
    )

    await repo.add(user, credential)

    assert await repo.get(user.id) == user
    assert await repo.get_by_email("ada.lovelace@example.com") == user
    assert await repo.get_password(user.id) == credential
    assert await repo.get(new_id()) is None
    assert await repo.get_by_email("Ada.Lovelace@Example.com") is None  # lookups use the normalized form


async def test_add_without_password(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    user = _user("nopass@example.com")
    await repo.add(user, None)
    assert await repo.get(user.id) == user
    assert await repo.get_password(user.id) is None


async def test_email_normalized_is_unique(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    first = _user("grace@example.com")
    await repo.add(first, PasswordCredential(user_id=first.id, hash="h1", updated_at=1.0))
    second = _user("GRACE@example.com", email_normalized="grace@example.com")

    with pytest.raises(EmailUnavailable):
        await repo.add(second, PasswordCredential(user_id=second.id, hash="h2", updated_at=2.0))

    assert await repo.get(second.id) is None
    assert await repo.get_password(second.id) is None  # the transaction rolled back as a whole
    assert await repo.get_by_email("grace@example.com") == first


async def test_set_password_inserts_then_updates(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    user = _user("hopper@example.com")
    await repo.add(user, None)

    await repo.set_password(PasswordCredential(user_id=user.id, hash="first", updated_at=10.0))
    assert await repo.get_password(user.id) == PasswordCredential(
        user_id=user.id, hash="first", updated_at=10.0
    )

    await repo.set_password(PasswordCredential(user_id=user.id, hash="second", updated_at=20.0))
    assert await repo.get_password(user.id) == PasswordCredential(
        user_id=user.id, hash="second", updated_at=20.0
    )
    async with sql_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(func.count())
                .select_from(t.password_credentials)
                .where(t.password_credentials.c.user_id == user.id)
            )
        ).scalar_one()
    assert rows == 1


async def test_set_disabled(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    user = _user("turing@example.com")
    await repo.add(user, None)

    assert await repo.set_disabled(user.id, True) is True
    fetched = await repo.get(user.id)
    assert fetched is not None and fetched.disabled is True
    assert await repo.set_disabled(user.id, False) is True
    fetched = await repo.get(user.id)
    assert fetched is not None and fetched.disabled is False
    assert await repo.set_disabled(new_id(), True) is False


async def test_list_is_ordered_and_paged(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    users = [_user(f"u{i}@example.com", created_at=1000.0 + i) for i in range(5)]
    for user in reversed(users):
        await repo.add(user, None)
    assert list(await repo.list()) == users
    assert list(await repo.list(limit=2, offset=1)) == users[1:3]


async def test_record_network_and_network_seen_since(sql_engine: AsyncEngine) -> None:
    repo = SqlUserRepo(sql_engine)
    user = _user("network@example.com")
    other = _user("other@example.com")
    await repo.add(user, None)
    await repo.add(other, None)
    now = time.time()

    assert await repo.network_seen_since(user.id, "203.0.113.0/24", now - 100) is False
    await repo.record_network(user.id, "203.0.113.0/24", now - 50)
    assert await repo.network_seen_since(user.id, "203.0.113.0/24", now - 100) is True
    assert await repo.network_seen_since(user.id, "203.0.113.0/24", now - 10) is False
    assert await repo.network_seen_since(user.id, "198.51.100.0/24", now - 100) is False
    assert await repo.network_seen_since(other.id, "203.0.113.0/24", now - 100) is False

    await repo.record_network(user.id, "203.0.113.0/24", now)  # upsert moves the timestamp forward
    assert await repo.network_seen_since(user.id, "203.0.113.0/24", now - 10) is True
    async with sql_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(func.count())
                .select_from(t.login_networks)
                .where(t.login_networks.c.user_id == user.id)
            )
        ).scalar_one()
    assert rows == 1


async def test_lookup_of_an_address_with_a_nul_byte_finds_nobody(sql_engine: AsyncEngine) -> None:
    # A login form may submit "\u0000" in JSON; PostgreSQL text cannot hold it, which must not be a 500.
    repo = SqlUserRepo(sql_engine)
    await repo.add(_user("nul@example.com"), None)
    assert await repo.get_by_email("nul\x00@example.com") is None
    assert await repo.get_by_email("\x00") is None
