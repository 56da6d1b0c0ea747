"""SessionStore: SQL on SQLite and PostgreSQL, and Redis. Same contract, every field."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from tests.integration.contract.conftest import AddUser
from tests.integration.records import session as _record
from threshold.core.models import Aal, Amr
from threshold.core.ports import SessionStore
from threshold.core.secrets import digest, new_id, new_token


async def test_create_get_round_trips_every_field(sessions: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    single = _record(
        user.id, aal=Aal.AAL1, amr=(Amr.PASSWORD,), ip="203.0.113.7", user_agent="", device_label=""
    )
    empty_amr = _record(user.id, amr=())

    for r in (record, single, empty_amr):
        await sessions.create(r)

    assert await sessions.get(record.digest) == record
    assert await sessions.get(single.digest) == single
    assert await sessions.get(empty_amr.digest) == empty_amr
    assert await sessions.get(digest(new_token())) is None


async def test_organization_connection_and_upstream_assurance_round_trip(
    sessions: SessionStore, add_user: AddUser
) -> None:
    user = await add_user()
    sso = replace(
        _record(user.id, device_label="Firefox | on Linux"),
        org_id=new_id(),
        connection_id=new_id(),
        upstream_acr="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        upstream_amr=("pwd", "mfa"),
    )
    org_only = replace(_record(user.id), org_id=new_id())
    await sessions.create(sso)
    await sessions.create(org_only)

    assert await sessions.get(sso.digest) == sso
    assert await sessions.get(org_only.digest) == org_only
    await sessions.touch(
        sso.digest, last_seen_at=sso.last_seen_at + 5, idle_expires_at=sso.idle_expires_at + 5
    )
    assert await sessions.get(sso.digest) == replace(
        sso, last_seen_at=sso.last_seen_at + 5, idle_expires_at=sso.idle_expires_at + 5
    )


async def test_touch_updates_last_seen_and_idle_expiry(sessions: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    await sessions.create(record)

    await sessions.touch(
        record.digest, last_seen_at=record.last_seen_at + 61.5, idle_expires_at=record.idle_expires_at + 61.5
    )

    assert await sessions.get(record.digest) == replace(
        record, last_seen_at=record.last_seen_at + 61.5, idle_expires_at=record.idle_expires_at + 61.5
    )


async def test_delete(sessions: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record, kept = _record(user.id), _record(user.id)
    await sessions.create(record)
    await sessions.create(kept)

    assert await sessions.delete(record.digest) is True
    assert await sessions.get(record.digest) is None
    assert await sessions.delete(record.digest) is False
    assert await sessions.get(kept.digest) == kept
    assert [r.digest for r in await sessions.list_for_user(user.id)] == [kept.digest]


async def test_touch_after_delete_does_not_resurrect(sessions: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    await sessions.create(record)
    await sessions.delete(record.digest)

    await sessions.touch(record.digest, last_seen_at=time.time(), idle_expires_at=time.time() + 3600)

    assert await sessions.get(record.digest) is None
    assert await sessions.list_for_user(user.id) == []


async def test_list_for_user(sessions: SessionStore, add_user: AddUser) -> None:
    user, other = await add_user(), await add_user()
    mine = [_record(user.id) for _ in range(3)]
    theirs = _record(other.id)
    for r in [*mine, theirs]:
        await sessions.create(r)

    listed = await sessions.list_for_user(user.id)
    assert sorted(listed, key=lambda r: r.digest) == sorted(mine, key=lambda r: r.digest)
    assert list(await sessions.list_for_user(other.id)) == [theirs]
    assert await sessions.list_for_user(new_id()) == []


async def test_delete_for_user_except_current(sessions: SessionStore, add_user: AddUser) -> None:
    user, other = await add_user(), await add_user()
    current, a, b = _record(user.id), _record(user.id), _record(user.id)
    theirs = _record(other.id)
    for r in (current, a, b, theirs):
        await sessions.create(r)

    assert await sessions.delete_for_user(user.id, except_digest=current.digest) == 2

    assert await sessions.get(a.digest) is None
    assert await sessions.get(b.digest) is None
    assert await sessions.get(current.digest) == current
    assert await sessions.get(theirs.digest) == theirs
    assert list(await sessions.list_for_user(user.id)) == [current]

    assert await sessions.delete_for_user(user.id) == 1
    assert await sessions.get(current.digest) is None
    assert await sessions.list_for_user(user.id) == []
    assert await sessions.delete_for_user(user.id) == 0
    assert await sessions.get(theirs.digest) == theirs


async def test_update_auth_records_a_step_up_on_a_live_session(
    sessions: SessionStore, add_user: AddUser
) -> None:
    user = await add_user()
    record = _record(user.id, aal=Aal.AAL1, amr=(Amr.PASSWORD,))
    await sessions.create(record)
    later = record.auth_time + 120.75

    assert await sessions.update_auth(
        record.digest, auth_time=later, aal=Aal.AAL2, amr=(Amr.PASSWORD, Amr.OTP)
    )
    assert await sessions.get(record.digest) == replace(
        record, auth_time=later, aal=Aal.AAL2, amr=(Amr.PASSWORD, Amr.OTP)
    )

    await sessions.delete(record.digest)
    assert not await sessions.update_auth(record.digest, auth_time=later, aal=Aal.AAL2, amr=(Amr.OTP,))
    assert await sessions.get(record.digest) is None


async def test_of_two_concurrent_deletes_one_deletes(sessions: SessionStore, add_user: AddUser) -> None:
    user = await add_user()
    record = _record(user.id)
    await sessions.create(record)

    deleted = await asyncio.gather(*(sessions.delete(record.digest) for _ in range(5)))

    assert sorted(deleted) == [False, False, False, False, True]
