"""Security notices: the owner is emailed when something about their account's security changes, and
sees the same events on the account page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ISSUER, STRONG_PASSWORD, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import Received
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import enrol_totp, new_account, register_passkey
from threshold.core.accounts import OPERATOR
from threshold.core.errors import DependencyUnavailable
from threshold.core.ratelimit import LoginThrottle

NEW_DEVICE = "New sign-in to your account"
ADDED = "A sign-in method was added"
REMOVED = "A sign-in method was removed"
PHONE = (
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/141.0 Mobile Safari/537.36"
)


def _is_notice(message: Received, subject: str) -> None:
    assert message.subject.startswith(subject), message.subject
    assert message.link("/account") == f"{ISSUER}/account"


async def _subjects(mail: MailApp, email: str) -> list[str]:
    return [m.subject.split(" · ")[0] for m in await mail.inbox(email)]


async def test_a_password_change_is_notified_and_listed(mail: MailApp) -> None:
    email = unique_email("change")
    assert (await signup(mail.client, email)).status_code == 201
    changed = await mail.client.post(
        "/api/v1/password/change",
        json={"current_password": STRONG_PASSWORD, "new_password": "copper meadow violin 2031 drift"},
    )
    assert changed.status_code == 200, changed.text
    notice = await mail.last(email, "Your password was changed")
    _is_notice(notice, "Your password was changed")
    assert "203.0.113.7" in notice.text
    page = (await mail.client.get("/account")).text
    assert "password changed" in page


async def test_adding_and_removing_factors_is_notified(mail: MailApp) -> None:
    account = await new_account(mail.client, "factors")
    await enrol_totp(account, mail.clock)
    passkey = await register_passkey(account, SoftAuthenticator())
    assert passkey.status_code == 201, passkey.text
    assert (
        await mail.client.delete(f"/api/v1/passkeys/{passkey.json()['passkey']['id']}")
    ).status_code == 204
    assert (await mail.client.delete("/api/v1/mfa/totp")).status_code == 204
    received = [m for m in await mail.inbox(account.email) if "sign-in method" in m.subject]
    assert sorted(m.subject.split(" · ")[0] for m in received) == [ADDED, ADDED, REMOVED, REMOVED]
    for message in received:
        _is_notice(message, message.subject.split(" · ")[0])
    page = (await mail.client.get("/account")).text
    for kind in ("totp enabled", "passkey added", "passkey removed", "totp removed"):
        assert kind in page, kind


async def test_refresh_token_reuse_is_notified(mail: MailApp) -> None:
    email = unique_email("reuse")
    assert (await signup(mail.client, email)).status_code == 201
    op = await mail.oidc()
    rp = await op.register()
    tokens = await op.tokens(rp)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    await mail.let_time_pass(mail.settings.oidc.refresh_reuse_grace + 1)
    stolen = await op.refresh(rp, tokens.refresh)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    _is_notice(
        await mail.last(email, "We stopped a possible token theft"), "We stopped a possible token theft"
    )


async def test_an_operator_recovery_request_is_notified(mail: MailApp) -> None:
    account = await new_account(mail.client, "recovery")
    user = await mail.services.users.get(account.user_id)
    assert user is not None
    await mail.services.recovery.request_recovery(user, requested_by="ops", wait=3600, context=OPERATOR)
    _is_notice(await mail.last(account.email, "Account recovery requested"), "Account recovery requested")


async def test_a_sign_in_from_a_new_browser_is_notified_and_a_known_one_is_not(mail: MailApp) -> None:
    email = unique_email("device")
    assert (await signup(mail.client, email)).status_code == 201
    assert (await mail.client.post("/api/v1/logout")).status_code in (200, 204)
    assert (await login(mail.client, email)).status_code == 200  # the browser that signed up
    assert NEW_DEVICE not in await _subjects(mail, email)

    phone = mail.browser(ip="192.0.2.44", user_agent=PHONE)
    assert (await login(phone, email)).status_code == 200
    notice = await mail.last(email, NEW_DEVICE)
    _is_notice(notice, NEW_DEVICE)
    assert "Chrome on Android" in notice.text and "192.0.2.44" in notice.text
    assert "new device sign in" in (await mail.client.get("/account")).text

    # The same phone again (it keeps its device cookie), and by email: no second notice.
    assert (await phone.post("/api/v1/logout")).status_code in (200, 204)
    assert (await login(phone, email)).status_code == 200
    await csrf(phone)
    assert (await phone.post("/api/v1/login/email", json={"email": email})).status_code == 202
    code = (await mail.last(email, "sign-in link")).code()
    assert (await phone.post("/api/v1/login/email/verify", json={"code": code})).status_code == 200
    assert (await _subjects(mail, email)).count(NEW_DEVICE) == 1

    # A sign-in by email from yet another browser is a new device too.
    tablet = mail.browser(ip="192.0.2.45")
    await csrf(tablet)
    assert (await tablet.post("/api/v1/login/email", json={"email": email})).status_code == 202
    code = (await mail.last(email, "sign-in link")).code()
    assert (await tablet.post("/api/v1/login/email/verify", json={"code": code})).status_code == 200
    assert (await _subjects(mail, email)).count(NEW_DEVICE) == 2


async def test_new_device_notices_can_be_switched_off(mail_factory: Callable[..., Any]) -> None:
    mail: MailApp = await mail_factory(email={"notify_new_device": False})
    email = unique_email("quiet")
    assert (await signup(mail.client, email)).status_code == 201
    assert (await login(mail.browser(), email)).status_code == 200
    assert NEW_DEVICE not in await _subjects(mail, email)


async def test_a_new_browser_is_notified_even_when_its_first_sign_in_fails_after_the_closing(
    mail: MailApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The closing writes remember the browser; a step after them that fails (the throttle's store down:
    # a 503) must not take the notice with it, or the retry finds the browser known and nobody is told.
    email = unique_email("outage")
    assert (await signup(mail.client, email)).status_code == 201
    original = LoginThrottle.signed_in
    failures = [DependencyUnavailable("the rate-limit store")]

    async def failing_once(self: LoginThrottle, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await original(self, **kwargs)

    monkeypatch.setattr(LoginThrottle, "signed_in", failing_once)
    phone = mail.browser(ip="192.0.2.46", user_agent=PHONE)
    assert (await login(phone, email)).status_code == 503
    assert (await login(phone, email)).status_code == 200
    assert (await _subjects(mail, email)).count(NEW_DEVICE) == 1
