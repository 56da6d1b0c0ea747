"""Deleting one's account (core.deletion): locked and signed out everywhere at once, erased after the
grace period unless the person signs in again and keeps it; the erasure leaves the audit trail under a
pseudonym and nothing of the person, is finished by the next sweep after a crash, and happens once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import String, Text, select

from tests.api.helpers import SESSION_COOKIE, FakeClock, assert_problem, browser
from tests.conftest import csrf, login, signup
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    Account,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    passkey_login,
    register_passkey,
    send_code,
    totp_code,
)
from tests.sso.conftest import acme
from tests.support.oidc_idp import ScriptedIdp
from threshold.adapters.sql import deletion_repo
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import reading
from threshold.core.clock import iso
from threshold.core.errors import DependencyUnavailable
from threshold.core.models import RequestContext, ScheduledDeletion
from threshold.core.ratelimit import personal_counter_fragments
from threshold.core.sso.models import Policy
from threshold.i18n import ENGLISH
from threshold.services import Services

GRACE = 3 * 86400
WINDOW = 300
OPERATOR = RequestContext(ip="cli", user_agent="threshold-cli")


def services_of(app: httpx.AsyncClient) -> Services:
    found: Services = app.services  # type: ignore[attr-defined]
    return found


async def _counter_keys(services: Services) -> list[str]:
    """Every attempt counter's key, where the deployment keeps them (Redis, or the database)."""
    if services.redis is not None:
        prefix = services.settings.redis_key_prefix
        return [key async for key in services.redis.scan_iter(match=f"{prefix}rl:*")]
    async with reading(services.engine) as conn:
        return list((await conn.execute(select(t.rate_limits.c.key))).scalars())


async def _delete(client: httpx.AsyncClient) -> httpx.Response:
    await csrf(client)
    return await client.post("/api/v1/account/delete")


async def _restore(client: httpx.AsyncClient) -> httpx.Response:
    await csrf(client)
    return await client.post("/api/v1/account/restore")


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> httpx.AsyncClient:
    result: httpx.AsyncClient = await app_factory(
        account={"deletion_grace": GRACE}, mfa={"reauthentication_window": WINDOW}
    )
    return result


async def _mentions(services: Services, needle: str) -> list[str]:
    """Every text cell of the database that contains `needle`, but mail still waiting to be sent."""
    found: list[str] = []
    async with reading(services.engine) as conn:
        for table in t.metadata.sorted_tables:
            columns = [c for c in table.c if isinstance(c.type, String | Text)]
            if not columns:
                continue
            query = select(*columns)
            if table is t.mail_queue:
                query = query.where(t.mail_queue.c.sent_at.is_not(None))
            for row in await conn.execute(query):
                found += [
                    f"{table.name}: {v}"
                    for v in row
                    if isinstance(v, str) and needle.casefold() in v.casefold()
                ]
    return found


async def test_deleting_needs_a_recent_proof_with_the_strongest_factor(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    await let_time_pass(app, clock, WINDOW + 1)
    body = assert_problem(await _delete(app), 401, "reauthentication_required")
    assert "password" not in body["methods"]
    assert (await app.get("/api/v1/session")).status_code == 200  # nothing happened
    assert account.totp_secret is not None
    proof = await app.post(
        "/api/v1/reauthenticate", json={"method": "totp", "code": totp_code(account.totp_secret, clock, 1)}
    )
    assert proof.status_code == 200, proof.text
    assert (await _delete(app)).status_code == 202


async def test_a_deletion_locks_the_account_and_ends_every_session_at_once(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    async with browser(app) as laptop:
        assert (await login(laptop, account.email)).status_code == 200
        response = await _delete(app)
        assert response.status_code == 202, response.text
        assert response.json() == {"status": "scheduled", "erase_at": iso(clock.now() + GRACE)}
        assert SESSION_COOKIE not in app.cookies  # cleared by the answer
        assert (await laptop.get("/api/v1/session")).status_code == 401
    assert (await app.get("/api/v1/session")).status_code == 401
    kinds = await audit_kinds(app, account.user_id)
    assert "account_deletion_requested" in kinds and "access_revoked" in kinds
    events = await services_of(app).audit_log.list_for_user(account.user_id, limit=50)
    assert any(e.detail.get("cause") == "user_deleted" for e in events)
    async with reading(services_of(app).engine) as conn:
        notices = (
            await conn.execute(
                select(t.mail_queue.c.kind, t.mail_queue.c.text_body).where(
                    t.mail_queue.c.to_address == account.email
                )
            )
        ).all()
    assert [kind for kind, _ in notices].count("notice_account_deletion") == 1
    body = next(text for kind, text in notices if kind == "notice_account_deletion")
    erase_at = datetime.fromtimestamp(clock.now() + GRACE, UTC)
    assert ENGLISH.moment(erase_at) in body  # "8 Dec 2026, 14:05 UTC": the date as a person reads it


async def test_signing_in_again_and_confirming_keeps_the_account(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    assert (await _delete(app)).status_code == 202
    async with browser(app) as phone:
        assert_problem(await _restore(phone), 401, "flow_expired")  # no offer without signing in
        response = await login(phone, account.email, "not the password, sorry")
        assert_problem(response, 401, "invalid_credentials")
        response = await login(phone, account.email)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "deletion_scheduled", "erase_at": iso(clock.now() + GRACE)}
        assert phone.cookies.get(SESSION_COOKIE) is None
        kept = await _restore(phone)
        assert kept.status_code == 200, kept.text
        assert kept.json()["user"]["id"] == account.user_id
        assert (await phone.get("/api/v1/session")).status_code == 200
        assert_problem(await _restore(phone), 401, "flow_expired")  # single use
    assert "account_deletion_cancelled" in await audit_kinds(app, account.user_id)
    await let_time_pass(app, clock, GRACE + 1)
    assert await services_of(app).deletions.erase_due() == 0
    assert await services_of(app).users.get(account.user_id) is not None


async def test_keeping_an_account_with_a_second_factor_needs_it_too(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert (await _delete(app)).status_code == 202
    async with browser(app) as phone:
        assert (await login(phone, account.email)).json()["status"] == "mfa_required"
        assert_problem(await _restore(phone), 401, "flow_expired")  # the password alone offers nothing
        assert account.totp_secret is not None
        response = await send_code(phone, "totp", totp_code(account.totp_secret, clock, 1))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "deletion_scheduled"
        kept = await _restore(phone)
        assert kept.status_code == 200, kept.text
        assert kept.json()["session"]["aal"] == "aal2"


async def test_a_disabled_account_without_a_deletion_is_still_refused(app: httpx.AsyncClient) -> None:
    account = await new_account(app)
    user = await services_of(app).accounts.find_user(account.email)
    await services_of(app).accounts.set_disabled(user, disabled=True)
    async with browser(app) as phone:
        assert_problem(await login(phone, account.email), 401, "invalid_credentials")
        assert_problem(await _restore(phone), 401, "flow_expired")


async def test_after_the_grace_period_the_person_is_erased_and_the_audit_trail_kept(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    services = services_of(app)
    before = await services.audit_log.list_for_user(account.user_id, limit=100)
    assert (await _delete(app)).status_code == 202
    await let_time_pass(app, clock, GRACE - 10)
    assert await services.deletions.erase_due() == 0
    await let_time_pass(app, clock, 11)
    async with browser(app) as phone:
        assert_problem(await login(phone, account.email), 401, "invalid_credentials")  # locked, past keeping
        await csrf(phone)
        asked = await phone.post("/api/v1/password/reset/request", json={"email": account.email})
        assert asked.status_code == 202  # counted per address, as for any address
    await services.email.drain()
    personal = personal_counter_fragments(account.user_id, account.email.casefold())
    counted = await _counter_keys(services)
    assert [key for key in counted if personal[1] in key]  # the sign-in attempt was counted
    assert [key for key in counted if personal[2] in key]  # and the mail asked for the address
    assert await services.deletions.erase_due() == 1

    assert await services.users.get(account.user_id) is None
    assert await services.audit_log.list_for_user(account.user_id, limit=100) == []
    async with reading(services.engine) as conn:
        row = (await conn.execute(select(t.account_deletions))).one()
    assert row.user_id is None and row.erased_at is not None
    trail = await services.audit_log.list_for_user(row.pseudonym, limit=200)
    kinds = [e.kind.value for e in trail]
    assert kinds.count("account_erased") == 1
    assert {"signup", "totp_enabled", "account_deletion_requested"} <= set(kinds)
    assert len(trail) >= len(before) + 3
    assert all(e.ip is None and e.user_agent is None for e in trail)
    assert await _mentions(services, account.email) == []
    assert await _mentions(services, account.user_id) == []
    assert not [key for key in await _counter_keys(services) if any(f in key for f in personal)]
    async with browser(app) as phone:
        assert_problem(await login(phone, account.email), 401, "invalid_credentials")


async def test_an_erasure_that_fails_midway_leaves_the_account_whole_and_the_next_sweep_finishes(
    app: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await new_account(app)
    services = services_of(app)
    assert (await _delete(app)).status_code == 202
    await let_time_pass(app, clock, GRACE + 1)

    real = deletion_repo.scrubbed_detail
    calls = 0

    def crash_after_two(raw: str, email: str) -> str:  # the database goes away inside the transaction
        nonlocal calls
        calls += 1
        if calls > 2:
            raise DependencyUnavailable("database")
        return real(raw, email)

    monkeypatch.setattr(deletion_repo, "scrubbed_detail", crash_after_two)
    with pytest.raises(DependencyUnavailable):
        await services.deletions.erase_due()
    assert await services.users.get(account.user_id) is not None  # nothing half erased
    kinds = await audit_kinds(app, account.user_id)
    assert "signup" in kinds and "account_erased" not in kinds

    monkeypatch.setattr(deletion_repo, "scrubbed_detail", real)
    assert await services.deletions.erase_due() == 1
    assert await services.users.get(account.user_id) is None
    assert await _mentions(services, account.email) == []


async def test_two_sweepers_at_once_erase_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    services = services_of(app)
    assert (await _delete(app)).status_code == 202
    await let_time_pass(app, clock, GRACE + 1)
    done = await asyncio.gather(*(services.deletions.erase_due() for _ in range(4)))
    assert sum(done) == 1
    async with reading(services.engine) as conn:
        pseudonym = (await conn.execute(select(t.account_deletions.c.pseudonym))).scalar_one()
    kinds = [e.kind.value for e in await services.audit_log.list_for_user(pseudonym, limit=100)]
    assert kinds.count("account_erased") == 1
    assert await services.users.get(account.user_id) is None


async def test_the_last_console_operator_cannot_be_deleted(app: httpx.AsyncClient) -> None:
    services = services_of(app)
    account = await new_account(app)
    user = await services.accounts.find_user(account.email)
    await services.console.grant(user, by="test", context=OPERATOR)
    assert_problem(await _delete(app), 409, "last_operator")
    assert (await app.get("/api/v1/session")).status_code == 200
    async with browser(app) as other:
        second = await new_account(other, "operator")
        await services.console.grant(
            await services.accounts.find_user(second.email), by="test", context=OPERATOR
        )
    assert (await _delete(app)).status_code == 202


async def test_an_operator_deletes_at_once(app: httpx.AsyncClient) -> None:
    services = services_of(app)
    account = await new_account(app)
    user = await services.accounts.find_user(account.email)
    done = await services.deletions.by_operator(user, by="cli", immediately=True, context=OPERATOR)
    assert done.erased
    assert await services.users.get(account.user_id) is None
    assert (await app.get("/api/v1/session")).status_code == 401
    assert await _mentions(services, account.email) == []


async def test_scheduling_locks_and_cancelling_unlocks_in_the_same_write(app: httpx.AsyncClient) -> None:
    """A process killed right after either write leaves no deletion without its lock, nor the reverse."""
    services = services_of(app)
    account = await new_account(app)
    repo = deletion_repo.SqlDeletionRepo(services.engine)
    at = services.clock.now()
    scheduled = ScheduledDeletion(
        pseudonym="erased-test",
        user_id=account.user_id,
        requested_at=at,
        erase_at=at + GRACE,
        requested_by="t",
    )
    assert await repo.schedule(scheduled) == scheduled
    locked = await services.users.get(account.user_id)
    assert locked is not None and locked.disabled
    assert await repo.cancel(account.user_id, now=at)
    kept = await services.users.get(account.user_id)
    assert kept is not None and not kept.disabled
    assert not await repo.cancel(account.user_id, now=at)  # nothing left to cancel


async def test_an_operators_lock_is_not_the_persons_to_lift(app: httpx.AsyncClient, clock: FakeClock) -> None:
    """A deletion the person asked for, then an operator's (or SCIM's) disable: signing in no longer
    keeps the account. An operator's enable keeps it (the deletion is dropped). An account disabled
    before its deletion cannot be kept by signing in either."""
    services = services_of(app)
    account = await new_account(app)
    assert (await _delete(app)).status_code == 202
    user = await services.accounts.find_user(account.email)
    await services.accounts.set_disabled(user, disabled=True)
    async with browser(app) as phone:
        assert_problem(await login(phone, account.email), 401, "invalid_credentials")
        await services.accounts.set_disabled(user, disabled=False)
        assert (await login(phone, account.email)).json()["user"]["id"] == account.user_id  # kept
    await let_time_pass(app, clock, GRACE + 1)
    assert await services.deletions.erase_due() == 0
    assert "account_deletion_cancelled" in await audit_kinds(app, account.user_id)

    async with browser(app) as other:
        second = await new_account(other, "locked")
    locked = await services.accounts.find_user(second.email)
    await services.accounts.set_disabled(locked, disabled=True)
    await services.deletions.by_operator(locked, by="cli", immediately=False, context=OPERATOR)
    async with browser(app) as phone:
        assert_problem(await login(phone, second.email), 401, "invalid_credentials")


async def test_two_operators_deleting_each_other_at_once_leave_one(app: httpx.AsyncClient) -> None:
    services = services_of(app)
    operators = []
    for name in ("first", "second"):
        async with browser(app) as other:
            made = await new_account(other, name)
        user = await services.accounts.find_user(made.email)
        await services.console.grant(user, by="test", context=OPERATOR)
        operators.append(user)
    results = await asyncio.gather(
        *(
            services.deletions.by_operator(u, by="cli", immediately=False, context=OPERATOR)
            for u in operators
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["DeletionScheduled", "LastOperator"], results


async def test_the_export_is_not_started_from_another_site(app: httpx.AsyncClient) -> None:
    await new_account(app)
    assert_problem(
        await app.get("/api/v1/account/export", headers={"Sec-Fetch-Site": "cross-site"}), 403, "forbidden"
    )
    assert (
        await app.get("/api/v1/account/export", headers={"Sec-Fetch-Site": "same-origin"})
    ).status_code == 200


async def _acme_account_with_a_passkey(app: httpx.AsyncClient, name: str) -> tuple[str, SoftAuthenticator]:
    """A signed-in account at acme.test (the SSO tests' organization's domain) with a passkey."""
    email = f"{name}.{secrets.token_hex(3)}@acme.test"
    assert (await signup(app, email)).status_code == 201
    account_id: str = (await app.get("/api/v1/session")).json()["user"]["id"]
    authenticator = SoftAuthenticator()
    account = Account(client=app, email=email, user_id=account_id, session_id="")
    assert (await register_passkey(account, authenticator)).status_code == 201
    return account_id, authenticator


async def test_a_passkey_does_not_keep_an_account_that_must_sign_in_with_sso(app: httpx.AsyncClient) -> None:
    """The keep offer needs proofs that could sign the account in: the SSO gate is checked before it."""
    services = services_of(app)
    account_id, authenticator = await _acme_account_with_a_passkey(app, "lee")
    idp = ScriptedIdp().start()
    try:
        await acme(services, idp, policy=Policy(require_sso=True))
        assert (await _delete(app)).status_code == 202
        async with browser(app) as phone:
            answer = await passkey_login(phone, authenticator)
            assert answer.status_code != 200 or answer.json().get("status") != "deletion_scheduled", (
                answer.text
            )
            assert phone.cookies.get(SESSION_COOKIE) is None
            assert_problem(await _restore(phone), 401, "flow_expired")
    finally:
        idp.stop()
    user = await services.users.get(account_id)
    assert user is not None and user.disabled


async def test_concurrent_confirmations_of_one_keep_offer_give_one_session(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The keep offer's token is single-use: of several confirmations at once, one keeps the account and
    signs in; the others find the offer gone."""
    account = await new_account(app)
    assert (await _delete(app)).status_code == 202
    async with browser(app) as phone:
        assert (await login(phone, account.email)).json()["status"] == "deletion_scheduled"
        await csrf(phone)
        answers = await asyncio.gather(*(phone.post("/api/v1/account/restore") for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 401} == {"flow_expired"}
    kinds = await audit_kinds(app, account.user_id)
    assert kinds.count("account_deletion_cancelled") == 1


async def test_an_offer_made_before_the_organization_required_sso_does_not_keep_the_account(
    app: httpx.AsyncClient,
) -> None:
    """The SSO gate is checked again when the keep offer is confirmed: a policy that arrived between the
    offer and the confirmation refuses it, and the account stays locked with its erasure scheduled."""
    services = services_of(app)
    account_id, authenticator = await _acme_account_with_a_passkey(app, "kim")
    assert (await _delete(app)).status_code == 202
    idp = ScriptedIdp().start()
    try:
        async with browser(app) as phone:
            offered = await passkey_login(phone, authenticator)
            assert offered.status_code == 200 and offered.json()["status"] == "deletion_scheduled", (
                offered.text
            )
            await acme(services, idp, policy=Policy(require_sso=True))
            assert_problem(await _restore(phone), 403, "sso_required")
            assert phone.cookies.get(SESSION_COOKIE) is None
            assert_problem(await _restore(phone), 401, "flow_expired")  # the offer was used up
    finally:
        idp.stop()
    user = await services.users.get(account_id)
    assert user is not None and user.disabled
    assert await services.deletions.restorable(user) is not None
