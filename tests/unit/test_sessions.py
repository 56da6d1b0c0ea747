"""SessionService: opaque tokens stored as digests, idle and absolute expiry, revocation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re

import pytest

from threshold.core.errors import SessionNotFound
from threshold.core.models import Aal, Amr, RequestContext
from threshold.core.sessions import IssuedSession, SessionService
from threshold.settings import SessionSettings

from .fakes import FakeClock, InMemorySessionStore

IDLE = 3600
ABSOLUTE = 8 * 3600
TOUCH = 60
CONTEXT = RequestContext(
    ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemorySessionStore:
    return InMemorySessionStore()


@pytest.fixture
def service(store: InMemorySessionStore, clock: FakeClock) -> SessionService:
    settings = SessionSettings(idle_timeout=IDLE, absolute_lifetime=ABSOLUTE, touch_interval=TOUCH)
    return SessionService(store, clock, settings)


async def issue(service: SessionService, user_id: str = "user-1") -> IssuedSession:
    return await service.issue_session(user_id=user_id, aal=Aal.AAL1, amr=[Amr.PASSWORD], context=CONTEXT)


# --- what is stored -------------------------------------------------------------------------------


async def test_store_keeps_the_sha256_digest_and_never_the_token(
    service: SessionService, store: InMemorySessionStore
) -> None:
    issued = await issue(service)
    assert list(store.records) == [hashlib.sha256(issued.token.encode()).hexdigest()]
    stored = store.records[issued.record.digest]
    for field in dataclasses.fields(stored):
        assert issued.token not in str(getattr(stored, field.name)), field.name
    assert issued.token not in repr(store.records)
    assert stored.public_id != stored.digest


async def test_tokens_are_256_bit_urlsafe_and_distinct(service: SessionService) -> None:
    issued = [await issue(service) for _ in range(50)]
    for item in issued:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", item.token)
        assert len(base64.urlsafe_b64decode(item.token + "=")) == 32
    assert len({item.token for item in issued}) == 50
    assert len({item.record.public_id for item in issued}) == 50


async def test_record_describes_the_sign_in(service: SessionService, clock: FakeClock) -> None:
    record = (await issue(service)).record
    assert record.user_id == "user-1"
    assert record.aal is Aal.AAL1 and record.amr == (Amr.PASSWORD,)
    assert record.ip == CONTEXT.ip
    assert record.device_label == "Firefox on Linux"
    assert record.created_at == record.last_seen_at == record.auth_time == clock.now()
    assert record.idle_expires_at == clock.now() + IDLE
    assert record.absolute_expires_at == clock.now() + ABSOLUTE


async def test_long_user_agent_is_truncated(service: SessionService) -> None:
    issued = await service.issue_session(
        user_id="u", aal=Aal.AAL1, amr=[Amr.PASSWORD], context=RequestContext(ip="::1", user_agent="x" * 5000)
    )
    assert len(issued.record.user_agent) == 512


# --- checking -------------------------------------------------------------------------------------


async def test_check_returns_the_live_session(service: SessionService) -> None:
    issued = await issue(service)
    record = await service.check_session(issued.token)
    assert record is not None and record.public_id == issued.record.public_id


@pytest.mark.parametrize("token", ["", "x" * 43, "x" * 129])
async def test_check_refuses_unknown_empty_and_oversized_tokens(service: SessionService, token: str) -> None:
    await issue(service)
    assert await service.check_session(token) is None


async def test_digest_is_not_accepted_as_a_token(service: SessionService) -> None:
    issued = await issue(service)
    assert await service.check_session(issued.record.digest) is None


async def test_idle_timeout_ends_the_session_and_deletes_it(
    service: SessionService, store: InMemorySessionStore, clock: FakeClock
) -> None:
    issued = await issue(service)
    clock.advance(IDLE - 1)
    other = await issue(service)
    assert await service.check_session(other.token) is not None
    clock.advance(1)
    assert await service.check_session(issued.token) is None
    assert issued.record.digest not in store.records
    assert other.record.digest in store.records


async def test_activity_extends_idle_expiry(service: SessionService, clock: FakeClock) -> None:
    issued = await issue(service)
    for _ in range(3):
        clock.advance(IDLE - 10)
        assert await service.check_session(issued.token) is not None
    assert clock.now() - issued.record.created_at > IDLE


async def test_absolute_lifetime_ends_an_active_session(
    service: SessionService, store: InMemorySessionStore, clock: FakeClock
) -> None:
    issued = await issue(service)
    end = issued.record.absolute_expires_at
    while clock.now() + 1800 < end:
        clock.advance(1800)
        record = await service.check_session(issued.token)
        assert record is not None
        assert record.idle_expires_at <= end
    clock.t = end
    assert await service.check_session(issued.token) is None
    assert store.records == {}


async def test_idle_expiry_never_extends_past_absolute(
    service: SessionService, store: InMemorySessionStore, clock: FakeClock
) -> None:
    issued = await issue(service)
    while clock.now() + IDLE - 10 < issued.record.absolute_expires_at - 100:
        clock.advance(IDLE - 10)
        assert await service.check_session(issued.token) is not None
    clock.t = issued.record.absolute_expires_at - 100
    record = await service.check_session(issued.token)
    assert record is not None
    assert record.idle_expires_at == issued.record.absolute_expires_at
    assert store.records[issued.record.digest].idle_expires_at == issued.record.absolute_expires_at
    clock.advance(100)
    assert await service.check_session(issued.token) is None


async def test_last_seen_is_written_only_after_the_touch_interval(
    service: SessionService, store: InMemorySessionStore, clock: FakeClock
) -> None:
    issued = await issue(service)
    for _ in range(5):
        clock.advance(10)
        record = await service.check_session(issued.token)
        assert record is not None and record.last_seen_at == issued.record.created_at
    assert store.touches == 0
    clock.advance(TOUCH - 50)
    record = await service.check_session(issued.token)
    assert store.touches == 1
    assert record is not None and record.last_seen_at == clock.now()
    assert record.idle_expires_at == clock.now() + IDLE
    assert store.records[issued.record.digest].last_seen_at == clock.now()
    clock.advance(TOUCH - 1)
    await service.check_session(issued.token)
    assert store.touches == 1


# --- listing and revocation -----------------------------------------------------------------------


async def test_list_omits_expired_sessions_and_puts_recent_first(
    service: SessionService, clock: FakeClock
) -> None:
    old = await issue(service)
    clock.advance(IDLE / 2)
    middle = await issue(service)
    clock.advance(IDLE / 4)
    newest = await issue(service)
    await issue(service, user_id="someone-else")
    assert [r.public_id for r in await service.list_sessions("user-1")] == [
        newest.record.public_id,
        middle.record.public_id,
        old.record.public_id,
    ]
    clock.advance(IDLE / 4)  # `old` is now idle for exactly IDLE
    assert [r.public_id for r in await service.list_sessions("user-1")] == [
        newest.record.public_id,
        middle.record.public_id,
    ]


async def test_find_one_session(service: SessionService) -> None:
    first, _ = await issue(service), await issue(service)
    found = await service.find_session(user_id="user-1", public_id=first.record.public_id)
    assert found.digest == first.record.digest
    assert await service.take_session(found)
    with pytest.raises(SessionNotFound):
        await service.find_session(user_id="user-1", public_id=first.record.public_id)


async def test_cannot_find_another_users_session(service: SessionService) -> None:
    theirs = await issue(service, user_id="victim")
    with pytest.raises(SessionNotFound):
        await service.find_session(user_id="attacker", public_id=theirs.record.public_id)
    assert await service.check_session(theirs.token) is not None


async def test_ending_others_keeps_only_the_current_session(service: SessionService) -> None:
    current, *others = [await issue(service) for _ in range(3)]
    bystander = await issue(service, user_id="someone-else")
    ended = await service.end_user_sessions("user-1", keep=current.record)
    assert sorted(r.digest for r in ended) == sorted(o.record.digest for o in others)
    assert await service.check_session(current.token) is not None
    assert [await service.check_session(o.token) for o in others] == [None, None]
    assert await service.check_session(bystander.token) is not None


async def test_revoke_all_and_end_session(service: SessionService) -> None:
    mine = [await issue(service) for _ in range(3)]
    bystander = await issue(service, user_id="someone-else")
    await service.end_session(mine[0].record)
    assert await service.check_session(mine[0].token) is None
    assert len(await service.end_user_sessions("user-1")) == 2
    assert [await service.check_session(s.token) for s in mine] == [None, None, None]
    assert await service.list_sessions("user-1") == []
    assert await service.check_session(bystander.token) is not None
