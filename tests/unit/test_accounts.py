"""Accounts and password sign-in: sign-up, `SignIn.with_password`, password change and operator actions,
wired by `build_engine` over in-memory fakes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from threshold.core.accounts import Accounts
from threshold.core.audit import Auditor
from threshold.core.crypto import SecretBox
from threshold.core.errors import (
    ConsecutiveFailuresCapped,
    CurrentPasswordWrong,
    EmailUnavailable,
    InvalidCredentials,
    PasswordTooShort,
    RateLimited,
    SignupDisabled,
    ThresholdError,
)
from threshold.core.flows.engine import Engine, build_engine
from threshold.core.flows.outcome import SignedIn
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.revocation import AccessRevoker
from threshold.core.sessions import SessionService
from threshold.settings import (
    Argon2Settings,
    PasswordSettings,
    RateLimitSettings,
    SessionSettings,
    Settings,
)

from .fakes import (
    FakeClock,
    InMemoryAuditLog,
    InMemoryEphemeralStore,
    InMemoryFactorRepo,
    InMemoryRateLimitStore,
    InMemorySessionStore,
    InMemoryUserRepo,
)

EMAIL = "Alice@Example.com"
PASSWORD = "plum orbit candle harbor"
NEW_PASSWORD = "violet kettle mirror anchor"
CONTEXT = RequestContext(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
CAPPED = RateLimitSettings(
    login_per_account=99, login_per_account_ip=99, login_per_ip=1000, consecutive_failures=5
)
"""Window budgets far away, so that only the consecutive-failure cap (5) can refuse."""


@dataclass
class World:
    accounts: Accounts
    engine: Engine
    users: InMemoryUserRepo
    store: InMemorySessionStore
    sessions: SessionService
    audit: InMemoryAuditLog
    clock: FakeClock
    hasher: PasswordHasher
    factors: InMemoryFactorRepo
    ephemeral: InMemoryEphemeralStore
    box: SecretBox

    def build(
        self,
        *,
        hasher: PasswordHasher | None = None,
        signup_enabled: bool = True,
        rate_limit: RateLimitSettings | None = None,
    ) -> tuple[Accounts, Engine]:
        """Another Accounts and engine over the same storage (a restart with different settings); rate
        limits start afresh."""
        settings = Settings(
            signup_enabled=signup_enabled,
            session=SessionSettings(),
            rate_limit=rate_limit or RateLimitSettings(),
        )
        auditor = Auditor(self.audit, self.clock)
        revoker = AccessRevoker(sessions=self.sessions, auditor=auditor)
        engine = build_engine(
            settings=settings,
            users=self.users,
            factor_repo=self.factors,
            ephemeral=self.ephemeral,
            rate_limits=InMemoryRateLimitStore(),
            sessions=self.sessions,
            hasher=hasher or self.hasher,
            auditor=auditor,
            clock=self.clock,
            box=self.box,
            revoker=revoker,
        )
        accounts = Accounts(
            users=self.users,
            sessions=self.sessions,
            hasher=hasher or self.hasher,
            policy=PasswordPolicy(PasswordSettings(), product_name="Threshold"),
            throttle=engine.throttle,
            auditor=auditor,
            clock=self.clock,
            signup_enabled=signup_enabled,
            password=engine.password,
            stepup=engine.stepup,
            signin=engine.signin,
            revoker=revoker,
        )
        return accounts, engine

    def rebuild(self, *, rate_limit: RateLimitSettings) -> None:
        self.accounts, self.engine = self.build(rate_limit=rate_limit)

    async def sign_in(
        self, email: str = EMAIL, password: str = PASSWORD, *, context: RequestContext = CONTEXT
    ) -> SignedIn:
        outcome = await self.engine.signin.with_password(email=email, password=password, context=context)
        assert isinstance(outcome, SignedIn)
        return outcome

    async def sign_up(self, email: str = EMAIL, password: str = PASSWORD) -> SignedIn:
        outcome = await self.accounts.sign_up(email=email, password=password, context=CONTEXT)
        assert isinstance(outcome, SignedIn)
        return outcome

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
        engine=None,  # type: ignore[arg-type]
        users=users,
        store=store,
        sessions=sessions,
        audit=InMemoryAuditLog(),
        clock=clock,
        hasher=hasher,
        factors=InMemoryFactorRepo(),
        ephemeral=InMemoryEphemeralStore(),
        box=SecretBox(secrets.token_bytes(32)),
    )
    w.accounts, w.engine = w.build()
    yield w
    hasher.close()


@pytest.fixture
async def alice(world: World) -> User:
    return (await world.sign_up()).user


# --- sign-up --------------------------------------------------------------------------------------


async def test_sign_up_creates_the_account_and_signs_it_in(world: World) -> None:
    signed_in = await world.accounts.sign_up(email="  Alice@Example.COM ", password=PASSWORD, context=CONTEXT)
    assert isinstance(signed_in, SignedIn)
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
    accounts, _ = world.build(signup_enabled=False)
    with pytest.raises(SignupDisabled):
        await accounts.sign_up(email=EMAIL, password=PASSWORD, context=CONTEXT)
    assert world.users.users == {} and world.store.records == {}


# --- sign-in --------------------------------------------------------------------------------------


async def test_sign_in_issues_a_new_session_each_time(world: World, alice: User) -> None:
    first = await world.sign_in()
    second = await world.sign_in(email="alice@EXAMPLE.com")
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
            await world.engine.signin.with_password(email=email, password=password, context=CONTEXT)
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
            await world.sign_in(password="wrong")
    with pytest.raises(RateLimited):
        await world.sign_in()


async def test_successful_sign_ins_never_throttle(world: World) -> None:
    """Each success gives its reservation back: one office address signs in far more often than any
    budget allows, and failures are still counted from zero afterwards."""
    world.rebuild(rate_limit=RateLimitSettings(login_per_ip=4, login_per_account_ip=2, login_per_account=2))
    alice = (await world.sign_up()).user
    bob = (await world.sign_up("bob@example.com")).user
    for _ in range(5):
        assert (await world.sign_in()).user.id == alice.id
        assert (await world.sign_in("bob@example.com")).user.id == bob.id
    assert len(world.events(AuditKind.LOGIN_SUCCEEDED)) == 10
    assert world.events(AuditKind.LOGIN_THROTTLED) == []
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await world.sign_in(password="wrong")
    with pytest.raises(RateLimited):
        await world.sign_in()


async def test_consecutive_failures_cap_even_the_right_password(world: World) -> None:
    world.rebuild(rate_limit=CAPPED)
    alice = (await world.sign_up()).user  # CONTEXT's network is now familiar
    for _ in range(CAPPED.consecutive_failures):
        with pytest.raises(InvalidCredentials):
            await world.sign_in(password="wrong")
    with pytest.raises(ConsecutiveFailuresCapped) as caught:
        await world.sign_in()
    assert isinstance(caught.value, RateLimited)
    assert world.events(AuditKind.LOGIN_THROTTLED) == [{"limits": "consecutive"}]
    assert len(world.events(AuditKind.LOGIN_FAILED)) == CAPPED.consecutive_failures
    await world.engine.throttle.signed_in(
        user_id=alice.id, email_normalized=alice.email_normalized
    )  # e.g. a passkey or an emailed link
    assert (await world.sign_in()).user.id == alice.id


async def test_changed_parameters_rehash_transparently(world: World, alice: User) -> None:
    old = await world.users.get_password(alice.id)
    assert old is not None and ",t=2," in old.hash
    epoch = alice.credential_epoch
    stronger = PasswordHasher(Argon2Settings(time_cost=3))
    try:
        _, engine = world.build(hasher=stronger)
        signed_in = await engine.signin.with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        assert isinstance(signed_in, SignedIn)
        assert await world.sessions.check_session(signed_in.session.token) is not None
        new = await world.users.get_password(alice.id)
        assert new is not None and ",t=3," in new.hash and new.hash != old.hash
        assert await stronger.verify(expected_hash=new.hash, password=PASSWORD) is not None
        # The same secret under new parameters: sign-ins and sessions begun before stay valid.
        assert await world.users.credential_epoch(alice.id) == epoch
        again = await engine.signin.with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        assert isinstance(again, SignedIn)
        assert await world.users.get_password(alice.id) == new  # no second rehash
    finally:
        stronger.close()


async def test_a_rehash_is_audited_once(world: World, alice: User) -> None:
    stronger = PasswordHasher(Argon2Settings(time_cost=3))
    try:
        _, engine = world.build(hasher=stronger)
        await engine.signin.with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        assert world.audit.kinds().count("password_rehashed") == 1
        await engine.signin.with_password(email=EMAIL, password=PASSWORD, context=CONTEXT)
        assert world.audit.kinds().count("password_rehashed") == 1
    finally:
        stronger.close()


# --- password change ------------------------------------------------------------------------------


async def test_change_password_ends_every_session_and_issues_a_new_one(world: World, alice: User) -> None:
    current = await world.sign_in()
    other = await world.sign_in()
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
    assert await world.users.credential_epoch(alice.id) == alice.credential_epoch + 1
    with pytest.raises(InvalidCredentials):
        await world.sign_in()
    await world.sign_in(password=NEW_PASSWORD)


async def test_change_password_with_the_wrong_current_password(world: World, alice: User) -> None:
    current = await world.sign_in()
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
    signed_in = await world.sign_in()
    assert await world.accounts.set_disabled(alice, disabled=True) == 2
    assert await world.sessions.check_session(signed_in.session.token) is None
    assert world.events(AuditKind.USER_DISABLED) == [{"sessions_revoked": "2"}]
    with pytest.raises(InvalidCredentials):
        await world.sign_in()
    assert await world.accounts.set_disabled(alice, disabled=False) == 0
    await world.sign_in()


async def test_a_disabled_users_live_session_is_ended_on_sight(world: World, alice: User) -> None:
    signed_in = await world.sign_in()
    record = await world.sessions.check_session(signed_in.session.token)
    assert record is not None
    assert await world.accounts.current_user(record) == alice
    await world.users.set_disabled(alice.id, True)  # e.g. another process, between check and use
    assert await world.accounts.current_user(record) is None
    assert signed_in.session.record.digest not in world.store.records


async def test_reaching_a_limit_is_audited_once_per_window(world: World) -> None:
    await world.sign_up()
    limit = RateLimitSettings().login_per_account_ip
    for _ in range(limit):
        with pytest.raises(InvalidCredentials):
            await world.sign_in(password="wrong " * 4)
    for _ in range(3):
        with pytest.raises(RateLimited):
            await world.sign_in(password="wrong " * 4)
    throttled = world.events(AuditKind.LOGIN_THROTTLED)
    assert throttled == [{"limits": "account_ip"}]
    assert len(world.events(AuditKind.LOGIN_FAILED)) == limit
