"""AuditLog.append (every sign-in writes one) stores the same event on SQLite and PostgreSQL, through
SQLAlchemy and through the asyncpg pool the service appends with, and inside a unit of work it commits
or rolls back with the unit."""

from __future__ import annotations

from tests.integration.contract.conftest import Storage, statements_of
from tests.integration.records import user
from threshold.adapters.sql.db import unit_of_work
from threshold.adapters.sql.repos import SqlAuditLog
from threshold.core.models import AuditEvent, AuditKind
from threshold.core.ports import UserRepo


async def test_an_event_reads_back_as_appended(users: UserRepo, user_storage: Storage) -> None:
    assert user_storage.engine is not None
    audit = SqlAuditLog(user_storage.engine, statements=statements_of(user_storage))
    ada = user()
    await users.add(ada, None)
    event = AuditEvent(
        kind=AuditKind.LOGIN_SUCCEEDED,
        at=1_700_000_000.25,
        user_id=ada.id,
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        detail={"method": "password", "session": "s-1"},
    )
    await audit.append(event)
    await audit.append(AuditEvent(kind=AuditKind.LOGIN_FAILED, at=1_700_000_001.0, detail={"reason": "x"}))

    [stored] = await audit.list_for_user(ada.id)
    assert stored.id is not None
    assert stored == AuditEvent(
        kind=event.kind, at=event.at, user_id=ada.id, ip=event.ip, user_agent=event.user_agent,
        detail=event.detail, id=stored.id,
    )  # fmt: skip


async def test_an_event_appended_in_a_unit_goes_with_the_unit(users: UserRepo, user_storage: Storage) -> None:
    assert user_storage.engine is not None
    audit = SqlAuditLog(user_storage.engine, statements=statements_of(user_storage))
    ada = user()
    await users.add(ada, None)

    class Undo(Exception):
        pass

    try:
        async with unit_of_work(user_storage.engine):
            await audit.append(AuditEvent(kind=AuditKind.LOGIN_SUCCEEDED, at=1.0, user_id=ada.id))
            raise Undo()
    except Undo:
        pass
    assert await audit.list_for_user(ada.id) == []

    async with unit_of_work(user_storage.engine):
        await audit.append(AuditEvent(kind=AuditKind.LOGIN_SUCCEEDED, at=2.0, user_id=ada.id))
    assert [e.at for e in await audit.list_for_user(ada.id)] == [2.0]
