"""One transaction across repositories (threshold.adapters.sql.db.unit_of_work), on SQLite and PostgreSQL:
all of its writes or none, its reads see its writes, a write with a foreign key to a row it made does
not wait on itself, a conflict raises out of it and leaves nothing, and a task started inside it runs on
connections of its own."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import asyncpg_url, open_engine
from threshold.adapters.sql.db import unit_of_work
from threshold.adapters.sql.org_repos import SqlOrgRepo
from threshold.adapters.sql.repos import SqlAuditLog, SqlUserRepo
from threshold.core.errors import EmailUnavailable
from threshold.core.models import AuditEvent, AuditKind, User
from threshold.core.orgs.models import Membership, Organization, OrgRole
from threshold.core.secrets import new_id


def _user(email: str | None = None) -> User:
    address = email or f"{new_id().lower()}@example.com"
    return User(
        id=new_id(),
        email=address,
        email_normalized=address,
        email_verified=True,
        disabled=False,
        created_at=time.time(),
    )


async def _org(orgs: SqlOrgRepo) -> Organization:
    org = Organization(id=new_id(), slug=f"o-{new_id().lower()[:10]}", name="Org", created_at=time.time())
    await orgs.add(org)
    return org


class Boom(Exception):
    pass


async def test_all_of_a_unit_or_none_of_it(sql_engine: AsyncEngine) -> None:
    users, orgs, audit = SqlUserRepo(sql_engine), SqlOrgRepo(sql_engine), SqlAuditLog(sql_engine)
    org = await _org(orgs)
    kept, dropped = _user(), _user()

    async def provision(user: User, *, fail: bool) -> None:
        async with unit_of_work(sql_engine):
            await users.add(user, None)
            assert await users.get(user.id) == user  # the unit's reads see its writes
            # a foreign key to the row just written: the same transaction, no wait on itself
            await orgs.put_member(Membership(org.id, user.id, OrgRole.MEMBER, time.time()))
            await audit.append(
                AuditEvent(kind=AuditKind.SCIM_USER_PROVISIONED, at=time.time(), user_id=user.id)
            )
            if fail:
                raise Boom()

    await provision(kept, fail=False)
    with pytest.raises(Boom):
        await provision(dropped, fail=True)
    assert await users.get(kept.id) == kept
    assert [m.org_id for m in await orgs.memberships_of(kept.id)] == [org.id]
    assert len(await audit.list_for_user(kept.id)) == 1
    assert await users.get(dropped.id) is None
    assert await orgs.memberships_of(dropped.id) == []
    assert await audit.list_for_user(dropped.id) == []


async def test_a_conflict_raises_out_of_the_unit_and_leaves_nothing(sql_engine: AsyncEngine) -> None:
    users, orgs = SqlUserRepo(sql_engine), SqlOrgRepo(sql_engine)
    org = await _org(orgs)
    taken = _user()
    await users.add(taken, None)
    other = _user()

    async def clash() -> None:
        async with unit_of_work(sql_engine):
            await users.add(other, None)
            await orgs.put_member(Membership(org.id, other.id, OrgRole.MEMBER, time.time()))
            await users.add(_user(taken.email_normalized), None)

    with pytest.raises(EmailUnavailable):
        await clash()
    assert await users.get(other.id) is None and await orgs.memberships_of(other.id) == []
    await users.add(_user(), None)  # the pool's connection is usable afterwards


async def test_a_task_started_inside_a_unit_runs_outside_it(sql_engine: AsyncEngine) -> None:
    users = SqlUserRepo(sql_engine)
    user = _user()
    async with unit_of_work(sql_engine):
        await users.add(user, None)
        seen_outside = await asyncio.create_task(users.get(user.id))
        assert seen_outside is None  # not committed yet, and not the unit's connection
    assert await users.get(user.id) == user


async def test_units_do_not_nest(sql_engine: AsyncEngine) -> None:
    async def nested() -> None:
        async with unit_of_work(sql_engine), unit_of_work(sql_engine):
            pass

    with pytest.raises(RuntimeError):
        await nested()


async def test_the_fast_path_reads_in_a_unit_see_its_writes(sql_url: str) -> None:
    """The fast runner's statements (asyncpg on PostgreSQL, sqlite3 threads on SQLite) run on the unit's
    connection inside a unit: its reads see the unit's writes (on SQLite a write outside the unit would
    wait for the unit's lock until the busy timeout)."""
    from threshold.adapters.sql.db import Runner, UnitAwareStatements
    from threshold.adapters.sql.pg_fast import FastPool
    from threshold.adapters.sql.sqlite_fast import SqliteRunner

    engine = await open_engine(sql_url)
    runner: Runner
    if engine.dialect.name == "postgresql":
        runner = FastPool(asyncpg_url(sql_url))
    else:
        assert engine.url.database
        runner = SqliteRunner(engine.url.database)
    users = SqlUserRepo(engine, statements=UnitAwareStatements(engine, runner))
    user = _user()
    try:
        async with unit_of_work(engine):
            await users.add(user, None)
            assert await users.get(user.id) == user
            assert await users.get_by_email(user.email_normalized) == user
            await users.remember_device(user.id, "browser-1", 10.0)  # a write through the statements
        assert await users.get(user.id) == user  # and outside, from the runner, once committed
        assert (await users.sightings(user.id)).devices == ((10.0, 10.0),)
    finally:
        await runner.close()
        await engine.dispose()
