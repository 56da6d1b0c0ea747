"""MFA at sign-in: the password alone gives a pending login, the session exists only after the factor."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import SESSION_COOKIE, FakeClock, assert_problem, browser, set_cookie
from tests.conftest import login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    PENDING_COOKIE,
    STEP,
    assert_refused,
    assert_signed_in,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    passkey_login,
    pending_login,
    register_passkey,
    send_code,
    totp_code,
)


async def test_password_then_totp_gives_a_new_aal2_session(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    secret = account.totp_secret
    assert secret
    await let_time_pass(app, clock, STEP)
    seen = {account.session_id}
    async with browser(app) as other:
        first = await login(other, account.email)
        assert first.status_code == 200, first.text
        assert first.json() == {"status": "mfa_required", "methods": ["totp", "recovery_code"]}
        assert SESSION_COOKIE not in other.cookies
        pending = set_cookie(first, PENDING_COOKIE)
        assert pending["httponly"] and pending["secure"] and pending["path"] == "/"
        assert int(pending["max-age"]) == 600
        assert_problem(await other.get("/api/v1/session"), 401, "not_authenticated")

        done = await send_code(other, "totp", totp_code(secret, clock))
        session = assert_signed_in(done, aal="aal2", amr={"pwd", "otp"})
        assert session["id"] not in seen
        seen.add(session["id"])
        assert int(set_cookie(done, PENDING_COOKIE).get("max-age", "0")) == 0  # the pending cookie is cleared
        me = (await other.get("/api/v1/session")).json()
        assert me["session"]["id"] == session["id"] and me["user"]["id"] == account.user_id
        assert me["session"]["aal"] == "aal2" and {"pwd", "otp"} <= set(me["session"]["amr"])

    async with browser(app) as third:  # each sign-in gets a session id of its own
        await pending_login(third, account.email)
        await let_time_pass(app, clock, STEP)
        again = assert_signed_in(
            await send_code(third, "totp", totp_code(secret, clock)), aal="aal2", amr={"otp"}
        )
        assert again["id"] not in seen
    assert "mfa_succeeded" in await audit_kinds(app, account.user_id)


async def test_a_pending_login_finishes_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert account.totp_secret
    await let_time_pass(app, clock, STEP)
    async with browser(app) as other:
        await pending_login(other, account.email)
        token = other.cookies.get(PENDING_COOKIE)
        assert_signed_in(
            await send_code(other, "totp", totp_code(account.totp_secret, clock)), aal="aal2", amr=set()
        )
    async with browser(app) as replayer:  # the same pending cookie, a fresh valid code
        replayer.cookies.set(PENDING_COOKIE, token or "", domain="auth.threshold.test", path="/")
        await let_time_pass(app, clock, STEP)
        code = account.recovery_codes[0]
        await assert_refused(await send_code(replayer, "recovery_code", code), replayer, 401, "flow_expired")


async def test_wrong_code_gives_invalid_code_and_no_session(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert account.totp_secret
    await let_time_pass(app, clock, 4 * STEP)
    async with browser(app) as other:
        await pending_login(other, account.email)
        wrong = f"{(int(totp_code(account.totp_secret, clock)) + 7) % 1_000_000:06d}"
        for method, code in (("totp", wrong), ("recovery_code", "aaaa-bbbb-cccc"), ("totp", "12ab56")):
            await assert_refused(await send_code(other, method, code), other, 400, "invalid_code")
        assert_problem(await send_code(other, "password", "x"), 400, "invalid_request")
        # still pending: the right code works after wrong ones
        assert_signed_in(
            await send_code(other, "totp", totp_code(account.totp_secret, clock)), aal="aal2", amr={"otp"}
        )
    assert (await audit_kinds(app, account.user_id)).count("mfa_failed") == 3


async def test_no_pending_cookie_means_flow_expired(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    async with browser(app) as other:
        await assert_refused(
            await send_code(other, "recovery_code", account.recovery_codes[0]), other, 401, "flow_expired"
        )
    assert (await app.get("/api/v1/mfa")).json()["recovery_codes_left"] == 10  # nothing was spent


async def test_the_pending_login_expires(app_factory: Callable[..., Any], clock: FakeClock) -> None:
    app = await app_factory(session={"pending_login_lifetime": 120})
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert account.totp_secret
    async with browser(app) as other:
        await pending_login(other, account.email)
        await let_time_pass(app, clock, 119)  # just inside the lifetime
        code = totp_code(account.totp_secret, clock)
        assert_signed_in(await send_code(other, "totp", code), aal="aal2", amr={"otp"})
    async with browser(app) as late:
        await pending_login(late, account.email)
        await let_time_pass(app, clock, 121)
        code = totp_code(account.totp_secret, clock)
        await assert_refused(await send_code(late, "totp", code), late, 401, "flow_expired")
        await assert_refused(
            await send_code(late, "recovery_code", account.recovery_codes[0]), late, 401, "flow_expired"
        )


async def test_too_many_wrong_codes_lock_even_the_right_one(
    app_factory: Callable[..., Any], clock: FakeClock
) -> None:
    app = await app_factory(mfa={"code_attempts": 3, "code_window": 300})
    account = await new_account(app)
    await enrol_totp(account, clock)
    secret = account.totp_secret
    assert secret
    await let_time_pass(app, clock, STEP)
    async with browser(app) as attacker:
        await pending_login(attacker, account.email)
        right = int(totp_code(secret, clock))
        for offset in (1, 2, 3):
            guess = f"{(right + offset) % 1_000_000:06d}"
            await assert_refused(await send_code(attacker, "totp", guess), attacker, 400, "invalid_code")
        locked = await send_code(attacker, "totp", totp_code(secret, clock))
        body = await assert_refused(locked, attacker, 429, "rate_limited")
        assert 1 <= int(locked.headers["retry-after"]) <= 300
        assert body["retry_after"] == int(locked.headers["retry-after"])
        # per account, not per browser: a fresh pending login is locked too, recovery codes included
    async with browser(app) as owner:
        await pending_login(owner, account.email)
        assert_problem(
            await send_code(owner, "recovery_code", account.recovery_codes[0]), 429, "rate_limited"
        )
        await let_time_pass(app, clock, 301)
        await pending_login(owner, account.email)
        assert_signed_in(await send_code(owner, "totp", totp_code(secret, clock)), aal="aal2", amr={"otp"})


async def test_a_recovery_code_signs_in_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    code = account.recovery_codes[3]
    async with browser(app) as other:
        await pending_login(other, account.email)
        # typed loosely: upper case, spaces instead of dashes
        loose = code.upper().replace("-", " ")
        session = assert_signed_in(
            await send_code(other, "recovery_code", loose), aal="aal2", amr={"pwd", "otp"}
        )
        assert session["id"] != account.session_id
    async with browser(app) as again:
        await pending_login(again, account.email)
        await assert_refused(await send_code(again, "recovery_code", code), again, 400, "invalid_code")
    assert (await app.get("/api/v1/mfa")).json()["recovery_codes_left"] == 9
    assert "recovery_code_used" in await audit_kinds(app, account.user_id)


async def test_two_concurrent_uses_of_one_recovery_code_exactly_one_wins(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    code = account.recovery_codes[0]
    async with browser(app) as first, browser(app) as second:
        await pending_login(first, account.email)
        await pending_login(second, account.email)
        answers = await asyncio.gather(
            send_code(first, "recovery_code", code), send_code(second, "recovery_code", code)
        )
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code != 200)
    assert_problem(loser, 400, "invalid_code")
    assert not any(h.startswith(SESSION_COOKIE + "=") for h in loser.headers.get_list("set-cookie"))
    assert (await app.get("/api/v1/mfa")).json()["recovery_codes_left"] == 9


async def test_a_network_becomes_familiar_by_a_completed_sign_in_not_by_a_right_password_alone(
    app_factory: Callable[..., Any], clock: FakeClock, authenticator: SoftAuthenticator
) -> None:
    """Networks an account has signed in from recently are exempt from its per-account limit (the owner
    still gets in while the account is under attack). A sign-in completed with a second factor or with a
    passkey makes its network one; a right password that still owes a second factor does not: knowing
    the password is not signing in."""
    limits = {"login_per_account_ip": 3, "login_per_account": 5, "login_per_ip": 8, "window": 60}
    app = await app_factory(rate_limit=limits)
    async with browser(app, ip="203.0.113.7") as home:
        account = await new_account(home)
        await enrol_totp(account, clock)
        assert (await register_passkey(account, authenticator)).status_code == 201
    secret = account.totp_secret
    assert secret
    await let_time_pass(app, clock, STEP)  # the enrolment's code is spent
    async with browser(app, ip="192.0.2.10") as office:  # password, then the authenticator app
        await pending_login(office, account.email)
        assert_signed_in(await send_code(office, "totp", totp_code(secret, clock)), aal="aal2", amr={"otp"})
    async with browser(app, ip="198.51.100.10") as phone:  # a passkey
        assert (await passkey_login(phone, authenticator)).status_code == 200
    async with browser(app, ip="100.64.0.10") as cafe:  # the right password, no second factor given
        await pending_login(cafe, account.email)
    for ip, tries in (("198.18.0.1", 3), ("198.18.1.1", 2)):  # 5 failures spend the account's budget
        async with browser(app, ip=ip) as attacker:
            for _ in range(tries):
                assert (await login(attacker, account.email, "definitely not it")).status_code == 401
    for ip in ("192.0.2.99", "198.51.100.99"):  # the networks signed in from: the owner still gets in
        async with browser(app, ip=ip) as owner:
            await pending_login(owner, account.email)
    async with browser(app, ip="100.64.0.99") as stranger:
        assert_problem(await login(stranger, account.email), 429, "rate_limited")
