"""The audit log is append-only in the database itself: UPDATE and DELETE fail (a trigger)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.repos import SqlAuditLog
from threshold.core.models import AuditEvent, AuditKind
from threshold.core.secrets import new_id


async def _append_two(log: SqlAuditLog, user_id: str) -> None:
    now = time.time()
    await log.append(
        AuditEvent(kind=AuditKind.SIGNUP, at=now, user_id=user_id, ip="198.51.100.4", user_agent="ua")
    )
    await log.append(
        AuditEvent(
            kind=AuditKind.LOGIN_FAILED,
            at=now + 1,
            user_id=user_id,
            ip="2001:db8::1",
            user_agent="ua2",
            detail={"reason": "wrong_password", "note": "é \u2603"},
        )
    )


async def test_append_and_list(sql_engine: AsyncEngine) -> None:
    log = SqlAuditLog(sql_engine)
    user_id = new_id()
    await _append_two(log, user_id)
    await log.append(AuditEvent(kind=AuditKind.LOGOUT, at=time.time(), user_id=new_id()))

    events = await log.list_for_user(user_id)

    assert [e.kind for e in events] == [AuditKind.LOGIN_FAILED, AuditKind.SIGNUP]  # newest first
    assert events[0].detail == {"reason": "wrong_password", "note": "é \u2603"}
    assert events[0].ip == "2001:db8::1"
    assert events[1].user_agent == "ua"
    assert all(e.id is not None for e in events)
    assert await log.count() == 3
    assert len(await log.list_for_user(user_id, limit=1)) == 1


async def test_update_is_refused(sql_engine: AsyncEngine) -> None:
    log = SqlAuditLog(sql_engine)
    user_id = new_id()
    await _append_two(log, user_id)

    with pytest.raises(DBAPIError, match="append-only"):
        async with sql_engine.begin() as conn:
            await conn.execute(update(t.audit_events).values(kind="logout"))

    assert [e.kind for e in await log.list_for_user(user_id)] == [AuditKind.LOGIN_FAILED, AuditKind.SIGNUP]


async def test_delete_is_refused(sql_engine: AsyncEngine) -> None:
    log = SqlAuditLog(sql_engine)
    user_id = new_id()
    await _append_two(log, user_id)

    with pytest.raises(DBAPIError, match="append-only"):
        async with sql_engine.begin() as conn:
            await conn.execute(delete(t.audit_events).where(t.audit_events.c.user_id == user_id))

    async with sql_engine.connect() as conn:
        remaining = (await conn.execute(select(func.count()).select_from(t.audit_events))).scalar_one()
    assert remaining == 2


async def test_only_an_erased_persons_pseudonymisation_is_accepted_and_only_once(
    sql_engine: AsyncEngine,
) -> None:
    """Account erasure (core.deletion) puts the events of an account that is gone under the pseudonym of
    an erasure carried out, without address or user agent; any other change, the events of an account
    that still exists, an unknown pseudonym, and a second pseudonymisation stay refused."""
    log = SqlAuditLog(sql_engine)
    gone, alive = new_id(), new_id()
    await _append_two(log, gone)
    await _append_two(log, alive)
    now = time.time()
    async with sql_engine.begin() as conn:
        await conn.execute(
            t.users.insert().values(
                id=alive, email=f"{alive}@example.com", email_normalized=f"{alive}@example.com",
                email_verified=False, disabled=False, created_at=now,
            )
        )  # fmt: skip
        await conn.execute(
            t.account_deletions.insert().values(
                pseudonym="erased-x",
                user_id=None,
                requested_at=now,
                erase_at=now,
                requested_by="t",
                erased_at=now,
            )
        )
    a = t.audit_events
    erased = {"ip": None, "user_agent": None}
    refused = [
        update(a).where(a.c.user_id == gone).values(user_id="erased-x", kind="logout", **erased),
        update(a).where(a.c.user_id == gone).values(user_id="erased-x", ip=None),  # the user agent kept
        update(a).where(a.c.user_id == gone).values(user_id="someone-else", **erased),
        update(a).where(a.c.user_id == gone).values(user_id="erased-unknown", **erased),  # no such erasure
        update(a).where(a.c.user_id == alive).values(user_id="erased-x", **erased),  # the account exists
    ]
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only"):
            async with sql_engine.begin() as conn:
                await conn.execute(statement)

    async with sql_engine.begin() as conn:
        await conn.execute(
            update(a).where(a.c.user_id == gone).values(user_id="erased-x", detail="{}", **erased)
        )
    events = await log.list_for_user("erased-x")
    assert [e.kind for e in events] == [AuditKind.LOGIN_FAILED, AuditKind.SIGNUP]
    assert all(e.ip is None and e.user_agent is None and e.detail == {} for e in events)
    assert len(await log.list_for_user(alive)) == 2

    with pytest.raises(DBAPIError, match="append-only"):
        async with sql_engine.begin() as conn:
            await conn.execute(update(a).where(a.c.user_id == "erased-x").values(user_id="erased-y"))
