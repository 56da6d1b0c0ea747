"""A sign-in begun before a password reset or change never yields a session after it (issue 11, hole 6),
and the consecutive-failure cap leaves the owner ways in (issue 11, hole 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import assert_problem
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of
from tests.mfa.helpers import enrol_totp, new_account, pending_login, send_code, totp_code
from threshold.core.errors import PendingLoginMissing
from threshold.core.methods.proofs import PASSWORD
from threshold.core.models import RequestContext

NEW_PASSWORD = "lantern meadow copper fjord 77"
RESET = "Reset your"
CONTEXT = RequestContext(ip="203.0.113.50", user_agent="pytest")


async def _reset(mail: MailApp, email: str, password: str = NEW_PASSWORD) -> None:
    browser = mail.browser()
    await csrf(browser)
    assert (await browser.post("/api/v1/password/reset/request", json={"email": email})).status_code == 202
    token = token_of((await mail.last(email, RESET)).link("/reset-password"))
    done = await browser.post("/api/v1/password/reset", json={"token": token, "new_password": password})
    assert done.status_code == 200, done.text


async def test_a_pending_second_step_started_before_a_reset_does_not_finish_after_it(mail: MailApp) -> None:
    account = await new_account(mail.browser(), "pending")
    await enrol_totp(account, mail.clock)
    assert account.totp_secret
    attacker = mail.browser()  # knows the old password, and will learn a TOTP code
    assert await pending_login(attacker, account.email) == ["totp", "recovery_code"]

    await _reset(mail, account.email)  # the owner resets the password meanwhile

    await mail.let_time_pass(30)
    late = await send_code(attacker, "totp", totp_code(account.totp_secret, mail.clock))
    assert_problem(late, 401, "flow_expired")
    assert (await attacker.get("/api/v1/session")).status_code == 401
    assert not [s for s in await mail.services.sessions.list_sessions(account.user_id)]


async def test_a_password_check_that_ran_before_a_reset_yields_no_session(mail: MailApp) -> None:
    """The first step read the account (epoch e) and checked the old password; the reset commits before
    the session is issued: the completion writes the session, sees the new epoch, and ends it again."""
    email = unique_email("race")
    assert (await signup(mail.browser(), email)).status_code == 201
    services = mail.services
    user = await services.users.get_by_email(email)
    assert user is not None
    epoch = user.credential_epoch
    await _reset(mail, email)
    with pytest.raises(PendingLoginMissing):
        await services.signin.complete(user, [PASSWORD], context=CONTEXT, epoch=epoch)
    assert await services.sessions.list_sessions(user.id) == []
    # A rehash of the same secret is no credential change.
    fresh = await services.users.get(user.id)
    assert fresh is not None and fresh.credential_epoch == epoch + 1


async def test_the_consecutive_failure_cap_leaves_the_owner_ways_in(mail_factory: Callable[..., Any]) -> None:
    mail: MailApp = await mail_factory(
        rate_limit={"consecutive_failures": 5, "login_per_account": 99, "login_per_account_ip": 99}
    )
    email = unique_email("capped")
    assert (await signup(mail.browser(), email)).status_code == 201
    for attempt in range(5):
        wrong = await login(mail.browser(), email, f"wrong password {attempt}")
        assert_problem(wrong, 401, "invalid_credentials")
    capped = await login(mail.browser(), email, STRONG_PASSWORD)  # even the right password waits
    body = assert_problem(capped, 429, "rate_limited")
    assert "passkey" in body["detail"] and "reset" in body["detail"]
    await mail.let_time_pass(3600)  # windows end; the consecutive count does not
    assert_problem(await login(mail.browser(), email, STRONG_PASSWORD), 429, "rate_limited")
    await _reset(mail, email)  # the owner resets the password (or signs in by an emailed link)
    assert (await login(mail.browser(), email, NEW_PASSWORD)).status_code == 200
