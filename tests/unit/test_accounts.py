"""Accounts: sign-up, password sign-in, password change and operator actions, against fakes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from threshold.core.accounts import Accounts
from threshold.core.audit import Auditor
from threshold.core.errors import (
    CurrentPasswordWrong,
    EmailUnavailable,
    InvalidCredentials,
    PasswordTooShort,
    RateLimited,
    SignupDisabled,
    ThresholdError,
)
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.ratelimit import LoginThrottle
from threshold.core.sessions import SessionService
from threshold.settings import Argon2Settings, PasswordSettings, RateLimitSettings, SessionSettings

from .fakes import FakeClock, InMemoryAuditLog, InMemoryRateLimitStore, InMemorySessionStore, InMemoryUserRepo

EMAIL = "Alice@Example.com"
PASSWORD = "plum orbit candle harbor"
NEW_PASSWORD = "violet kettle mirror anchor"
CONTEXT = RequestContext(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")


@dataclass
class World:
    accounts: Accounts
    users: InMemoryUserRepo
    store: InMemorySessionStore
    sessions: SessionService
    audit: InMemoryAuditLog
    clock: FakeClock
    hasher: PasswordHasher

    def build(self, *, hasher: PasswordHasher | None = None, signup_enabled: bool = True) -> Accounts:
        """Another Accounts over the same storage (a restart with different settings)."""
        return Accounts(
            users=self.users,
            sessions=self.sessions,
            hasher=hasher or self.hasher,
            policy=PasswordPolicy(PasswordSettings(), product_name="Threshold"),
            throttle=LoginThrottle(InMemoryRateLimitStore(), self.users, self.clock, RateLimitSettings()),
            auditor=Auditor(self.audit, self.clock),
            clock=self.clock,
            signup_enabled=signup_enabled,
        )

    def events(self, kind: AuditKind) -> list[dict[str, str]]:
        return [event.detail for event in self.audit.events if event.kind is kind]


@pytest.fixture
def world() -> Iterator[World]:
    clock = FakeClock()
    users = InMemoryUserRepo()
    store = InMemorySessionStore()
    sessions = SessionService(store, clock, SessionSettings())
    hasher = PasswordHasher(Argon2Settings())
    w = World(
        accounts=None,  # type: ignore[arg-type]
        users=users,
        store=store,
        sessions=sessions,
        audit=InMemoryAuditLog(),
        clock=clock,
        hasher=hasher,
    )
    w.accounts = w.build()
    yield w
    hasher.close()


@pytest.fixture
async def alice(world: World) -> User:
    signed_in = await world.accounts.sign_up(email=EMAIL, password=PASSWORD, context=CONTEXT)
    return signed_in.user


# --- sign-up --------------------------------------------------------------------------------------


async def test_sign_up_creates_the_account_and_signs_it_in(world: World) -> None:
    signed_in = await world.accounts.sign_up(email="  Alice@Example.COM ", password=PASSWORD, context=CONTEXT)
    assert signed_in.user.email == "Alice@example.com"
    assert signed_in.user.email_normalized == "alice@example.com"
    assert not signed_in.user.email_verified and not signed_in.user.disabled
    assert await world.users.get_by_email("alice@example.com") == signed_in.user
    assert await world.sessions.check_session(signed_in.session.token) is not None
    stored = await world.users.get_password(signed_in.user.id)
    assert stored is not None and stored.hash.startswith("$argon2id$") and PASSWORD not in stored.hash
    assert world.audit.kinds() == ["signup"]


async def test_sign_up_with_a_taken_address_is_refused(world: World, alice: User) -> None:
    with pytest.raises(EmailUnavailable):
        await world.accounts.sign_up(email="ALICE@example.COM", password=NEW_PASSWORD, context=CONTEXT)
    assert len(world.users.users) == 1
    assert len(world.store.records) == 1  # only alice's own sign-up session


async def test_sign_up_applies_the_password_policy(world: World) -> None:
    with pytest.raises(PasswordTooShort):
        await world.accounts.sign_up(email=EMAIL, password="short pass", context=CONTEXT)
    assert world.users.users == {}


async def test_sign_up_when_disabled(world: World) -> None:
    accounts = world.build(signup_enabled=False)
    with pytest.raises(SignupDisabled):
        await accounts.sign_up(email=EMAIL, password=PASSWORD, context=CONTEXT)
    assert world.users.users == {} and world.store.records == {}


# --- sign-in --------------------------------------------------------------------------------------


async def test_sign_in_issues_a_new_session_each_time(world: World, alice: User) -> None:
    first = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    second = await world.accounts.sign_in_with_password(
        email="alice@EXAMPLE.com", password=PASSWORD, context=CONTEXT
    )
    assert first.user.id == second.user.id == alice.id
    assert first.session.token != second.session.token
    assert first.session.record.public_id != second.session.record.public_id
    assert await world.sessions.check_session(first.session.token) is not None
    assert await world.sessions.check_session(second.session.token) is not None
    successes = world.events(AuditKind.LOGIN_SUCCEEDED)
    assert [d["session"] for d in successes] == [
        first.session.record.public_id,
        second.session.record.public_id,
    ]
    assert all(d["method"] == "password" for d in successes)


async def test_every_failure_is_the_same_invalid_credentials(world: World, alice: User) -> None:
    bob = await world.accounts.create_user(email="bob@example.com", password=PASSWORD)
    await world.accounts.set_disabled(bob, disabled=True)
    sessions_before = dict(world.store.records)

    async def failure(email: str, password: str) -> ThresholdError:
        with pytest.raises(InvalidCredentials) as caught:
            await world.accounts.sign_in_with_password(email=email, password=password, context=CONTEXT)
        return caught.value

    errors = [
        await failure("nobody@example.com", PASSWORD),
        await failure(EMAIL, NEW_PASSWORD),
        await failure("bob@example.com", PASSWORD),
        await failure("not an address", PASSWORD),
    ]
    assert {type(e) for e in errors} == {InvalidCredentials}
    assert {(e.code, str(e), tuple(e.details.items())) for e in errors} == {
        ("invalid_credentials", InvalidCredentials.message, ())
    }
    assert world.store.records == sessions_before
    failed = [e for e in world.audit.events if e.kind is AuditKind.LOGIN_FAILED]
    assert [(e.user_id, e.detail["reason"]) for e in failed] == [
        (None, "unknown_account"),
        (alice.id, "wrong_password"),
        (bob.id, "disabled"),
        (None, "unknown_account"),
    ]
    assert all(e.ip == CONTEXT.ip for e in failed)


async def test_repeated_failures_are_throttled_even_for_the_right_password(world: World, alice: User) -> None:
    for _ in range(RateLimitSettings().login_per_account_ip):
        with pytest.raises(InvalidCredentials):
            await world.accounts.sign_in_with_password(email=EMAIL, password="wrong", context=CONTEXT)
    with pytest.raises(RateLimited):
        await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)


async def test_changed_parameters_rehash_transparently(world: World, alice: User) -> None:
    old = await world.users.get_password(alice.id)
    assert old is not None and ",t=2," in old.hash
    stronger = PasswordHasher(Argon2Settings(time_cost=3))
    try:
        accounts = world.build(hasher=stronger)
        await accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        new = await world.users.get_password(alice.id)
        assert new is not None and ",t=3," in new.hash and new.hash != old.hash
        assert world.audit.kinds().count("password_rehashed") == 1
        await accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        assert world.audit.kinds().count("password_rehashed") == 1
        assert await stronger.verify(expected_hash=new.hash, password=PASSWORD) is not None
    finally:
        stronger.close()


# --- password change ------------------------------------------------------------------------------


async def test_change_password_ends_every_session_and_issues_a_new_one(world: World, alice: User) -> None:
    current = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    other = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    issued = await world.accounts.change_password(
        user=alice,
        current_session=current.session.record,
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
        context=CONTEXT,
    )
    assert issued.token not in (current.session.token, other.session.token)
    assert await world.sessions.check_session(current.session.token) is None
    assert await world.sessions.check_session(other.session.token) is None
    assert await world.sessions.check_session(issued.token) is not None
    assert [r.public_id for r in await world.sessions.list_sessions(alice.id)] == [issued.record.public_id]
    assert world.events(AuditKind.PASSWORD_CHANGED) == [{"sessions_revoked": "3"}]
    with pytest.raises(InvalidCredentials):
        await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    await world.accounts.sign_in_with_password(email=EMAIL, password=NEW_PASSWORD, context=CONTEXT)


async def test_change_password_with_the_wrong_current_password(world: World, alice: User) -> None:
    current = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    before = await world.users.get_password(alice.id)
    with pytest.raises(CurrentPasswordWrong):
        await world.accounts.change_password(
            user=alice,
            current_session=current.session.record,
            current_password="not my password",
            new_password=NEW_PASSWORD,
            context=CONTEXT,
        )
    assert await world.users.get_password(alice.id) == before
    assert await world.sessions.check_session(current.session.token) is not None
    assert world.events(AuditKind.LOGIN_FAILED) == [{"reason": "password_change_wrong_password"}]


# --- operator actions -----------------------------------------------------------------------------


async def test_disabling_a_user_ends_their_sessions(world: World, alice: User) -> None:
    signed_in = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    assert await world.accounts.set_disabled(alice, disabled=True) == 2
    assert await world.sessions.check_session(signed_in.session.token) is None
    assert world.events(AuditKind.USER_DISABLED) == [{"sessions_revoked": "2"}]
    with pytest.raises(InvalidCredentials):
        await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    assert await world.accounts.set_disabled(alice, disabled=False) == 0
    await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)


async def test_a_disabled_users_live_session_is_ended_on_sight(world: World, alice: User) -> None:
    signed_in = await world.accounts.sign_in_with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
    record = await world.sessions.check_session(signed_in.session.token)
    assert record is not None
    assert await world.accounts.current_user(record) == alice
    await world.users.set_disabled(alice.id, True)  # e.g. another process, between check and use
    assert await world.accounts.current_user(record) is None
    assert signed_in.session.record.digest not in world.store.records


async def test_reaching_a_limit_is_audited_once_per_window(world: World) -> None:
    await world.accounts.sign_up(email=EMAIL, password=PASSWORD, context=CONTEXT)
    limit = RateLimitSettings().login_per_account_ip
    for _ in range(limit):
        with pytest.raises(InvalidCredentials):
            await world.accounts.sign_in_with_password(email=EMAIL, password="wrong " * 4, context=CONTEXT)
    with pytest.raises(RateLimited):
        await world.accounts.sign_in_with_password(email=EMAIL, password="wrong " * 4, context=CONTEXT)
    throttled = world.events(AuditKind.LOGIN_THROTTLED)
    assert throttled == [{"limits": "account_ip"}]
    assert len(world.events(AuditKind.LOGIN_FAILED)) == limit
