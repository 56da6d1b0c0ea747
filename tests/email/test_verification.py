"""Address verification: the emailed link, single use, expiry, resend limits, and the "required" policy
that answers sign-up the same way for new and taken addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import SESSION_COOKIE, assert_problem, form_value
from tests.conftest import ISSUER, STRONG_PASSWORD, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of

CONFIRM = "Confirm your email address"


async def _verified(client: Any) -> bool:
    response = await client.get("/api/v1/session")
    assert response.status_code == 200, response.text
    value: bool = response.json()["user"]["email_verified"]
    return value


async def test_optional_verification_link_verifies_once(mail: MailApp) -> None:
    email = unique_email("verify")
    response = await signup(mail.client, email)
    assert response.status_code == 201 and response.json()["user"]["email_verified"] is False
    assert not await _verified(mail.client)

    (message,) = await mail.inbox(email)
    assert message.subject.startswith(CONFIRM)
    link = message.link("/verify-email")
    token = token_of(link)

    # Opening the link shows a button; fetching it (a mail scanner) consumes nothing.
    for _ in range(2):
        page = await mail.browser().get(link)
        assert page.status_code == 200 and form_value(page.text, "token") == token
    assert not await _verified(mail.client)

    # Anyone holding the link can confirm it (no session needed); only once.
    stranger = mail.browser()
    await csrf(stranger)
    confirmed = await stranger.post("/api/v1/email/verify", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["user"] == {
        "id": response.json()["user"]["id"],
        "email": email,
        "email_verified": True,
    }
    assert await _verified(mail.client)
    assert_problem(await stranger.post("/api/v1/email/verify", json={"token": token}), 400, "token_invalid")
    assert_problem(
        await stranger.post("/api/v1/email/verify", json={"token": token + "x"}), 400, "token_invalid"
    )


async def test_an_expired_verification_link_is_refused(mail: MailApp) -> None:
    email = unique_email("late")
    assert (await signup(mail.client, email)).status_code == 201
    token = token_of((await mail.last(email, CONFIRM)).link("/verify-email"))
    await mail.let_time_pass(mail.settings.email.verification_lifetime + 1)
    assert_problem(
        await mail.client.post("/api/v1/email/verify", json={"token": token}), 400, "token_invalid"
    )
    assert not await _verified(mail.client)


async def test_resend_replaces_the_link_and_is_rate_limited(mail_factory: Callable[..., Any]) -> None:
    mail: MailApp = await mail_factory(email={"per_address": 2})
    email = unique_email("resend")
    assert (await signup(mail.client, email)).status_code == 201
    first = token_of((await mail.last(email, CONFIRM)).link("/verify-email"))

    for _ in range(2):
        resent = await mail.client.post("/api/v1/email/verify/resend")
        assert resent.status_code == 202 and resent.json() == {"status": "verification_sent"}
        await mail.deliver()  # one at a time: the order received is the order sent
    limited = assert_problem(await mail.client.post("/api/v1/email/verify/resend"), 429, "rate_limited")
    assert int(limited.get("retry_after", 1)) > 0
    messages = await mail.inbox(email, CONFIRM)
    assert len(messages) == 3  # sign-up + two resends; the refused one sent nothing

    # Only the newest link works.
    newest = token_of(messages[-1].link("/verify-email"))
    assert_problem(
        await mail.client.post("/api/v1/email/verify", json={"token": first}), 400, "token_invalid"
    )
    assert (await mail.client.post("/api/v1/email/verify", json={"token": newest})).status_code == 200
    assert await _verified(mail.client)

    # Resend needs a session.
    anonymous = mail.browser()
    await csrf(anonymous)
    assert_problem(await anonymous.post("/api/v1/email/verify/resend"), 401, "not_authenticated")


async def test_required_verification_answers_alike_for_new_and_taken_addresses(
    mail_factory: Callable[..., Any],
) -> None:
    mail: MailApp = await mail_factory(email={"verification": "required"})
    taken, fresh = unique_email("owner"), unique_email("newcomer")

    owner = await signup(mail.client, taken)
    assert owner.status_code == 202, owner.text
    token = token_of((await mail.last(taken, CONFIRM)).link("/verify-email"))
    assert (await mail.client.post("/api/v1/email/verify", json={"token": token})).status_code == 200

    answers = []
    for address, password in ((fresh, STRONG_PASSWORD), (taken, "a different passphrase 777")):
        browser = mail.browser()
        answer = await signup(browser, address, password)
        answers.append(answer)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"status": "verification_required"}
        assert not any(h.startswith(SESSION_COOKIE) for h in answer.headers.get_list("set-cookie"))
        assert (await browser.get("/api/v1/session")).status_code == 401
    assert answers[0].content == answers[1].content
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
    cookie_names = [sorted(h.split("=", 1)[0] for h in a.headers.get_list("set-cookie")) for a in answers]
    assert cookie_names[0] == cookie_names[1]

    # The newcomer gets a verification link; the owner a notice (and nothing changed for them).
    (newcomer,) = await mail.inbox(fresh)
    assert newcomer.subject.startswith(CONFIRM)
    notice = await mail.last(taken, "Someone tried to sign up with your address")
    assert "Nothing was changed" in notice.text
    assert sorted(notice.links()) == [f"{ISSUER}/login", f"{ISSUER}/reset-password"]
    assert len(await mail.inbox(taken)) == 2  # the owner's own verification, then the notice
    assert (await login(mail.browser(), taken)).status_code == 200
    assert_problem(
        await login(mail.browser(), taken, "a different passphrase 777"), 401, "invalid_credentials"
    )

    # The newcomer verifies and signs in.
    token = token_of(newcomer.link("/verify-email"))
    verified = await mail.browser().post("/api/v1/email/verify", json={"token": token})
    assert verified.status_code == 200 and verified.json()["user"]["email_verified"] is True
    signed_in = await login(mail.browser(), fresh)
    assert signed_in.status_code == 200 and signed_in.json()["user"]["email_verified"] is True


async def test_required_verification_holds_back_the_password_until_the_link_is_opened(
    mail_factory: Callable[..., Any],
) -> None:
    """An unverified account's right password answers email_not_verified (the wrong one still answers
    invalid_credentials) with no session, and a fresh link is sent; the link, or a sign-in by email
    (which proves the mailbox), lets the account in."""
    mail: MailApp = await mail_factory(email={"verification": "required", "per_address": 2})
    email = unique_email("pending")
    assert (await signup(mail.client, email)).status_code == 202
    assert len(await mail.inbox(email, CONFIRM)) == 1

    assert_problem(
        await login(mail.browser(), email, "not the password at all 99"), 401, "invalid_credentials"
    )
    for resent in (2, 3, 3):  # each refusal resends the link, up to the per-address limit
        browser = mail.browser()
        refused = assert_problem(await login(browser, email), 403, "email_not_verified")
        assert "link" in refused["detail"]
        assert (await browser.get("/api/v1/session")).status_code == 401
        assert len(await mail.inbox(email, CONFIRM)) == resent
    token = token_of((await mail.last(email, CONFIRM)).link("/verify-email"))
    assert (await mail.browser().post("/api/v1/email/verify", json={"token": token})).status_code == 200
    signed_in = await login(mail.browser(), email)
    assert signed_in.status_code == 200 and signed_in.json()["user"]["email_verified"] is True

    # Sign-in by email verifies on its own.
    other = unique_email("by-email")
    assert (await signup(mail.browser(), other)).status_code == 202
    browser = mail.browser()
    await csrf(browser)
    assert (await browser.post("/api/v1/login/email", json={"email": other})).status_code == 202
    code = (await mail.last(other, "sign-in")).code()
    done = await browser.post("/api/v1/login/email/verify", json={"code": code})
    assert done.status_code == 200, done.text
    assert done.json()["user"]["email_verified"] is True
    assert await _verified(browser)
    assert (await login(mail.browser(), other)).status_code == 200


async def test_sign_up_attempts_on_a_taken_address_do_not_flood_its_owner(mail: MailApp) -> None:
    """The "someone tried to sign up with your address" notice is limited per address."""
    owner = unique_email("owner")
    assert (await signup(mail.browser(), owner)).status_code == 201
    per_address = mail.settings.email.per_address
    for _ in range(per_address + 3):
        await mail.services.email.signup_attempt_on_existing(owner)
    notices = await mail.inbox(owner, "Someone tried to sign up")
    assert len(notices) == per_address


async def test_with_verification_required_the_sign_up_network_is_familiar(
    mail_factory: Callable[..., Any],
) -> None:
    """A sign-up makes its network familiar (exempt from the per-account limit) whatever the policy:
    here no session follows it, and the first completed sign-in may come while an attacker spends the
    account's budget."""
    limits = {"login_per_account_ip": 3, "login_per_account": 5, "login_per_ip": 8, "window": 60}
    mail: MailApp = await mail_factory(email={"verification": "required"}, rate_limit=limits)
    email = unique_email("pending")
    assert (await signup(mail.browser("203.0.113.7"), email)).status_code == 202
    token = token_of((await mail.last(email, CONFIRM)).link("/verify-email"))
    assert (await mail.browser().post("/api/v1/email/verify", json={"token": token})).status_code == 200
    for ip, tries in (("198.18.0.1", 3), ("198.18.1.1", 2)):  # 5 failures spend the account's budget
        attacker = mail.browser(ip)
        for _ in range(tries):
            assert (await login(attacker, email, "definitely not it")).status_code == 401
    assert (await login(mail.browser("203.0.113.99"), email)).status_code == 200  # the sign-up's /24
    assert_problem(await login(mail.browser("192.0.2.50"), email), 429, "rate_limited")
