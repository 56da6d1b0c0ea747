"""A trip through the mailbox in the middle of an authorization comes back to it: a password reset and
an emailed sign-in link opened in the browser that started them end at the application's authorization."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.conftest import ISSUER, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of
from tests.oidc.helpers import hidden_inputs
from tests.oidc.test_authorization_pages import form_action, login_page_of

BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}
NEW_PASSWORD = "copper meadow violin 2031 drift"


def _after_offer(location: str) -> str:
    parts = urlsplit(location)
    if parts.path == "/account/passkey-upgrade":
        return parse_qs(parts.query)["next"][0]
    return location


async def test_a_password_reset_started_in_an_authorization_returns_to_it(mail: MailApp) -> None:
    email = unique_email("reset-rt")
    assert (await signup(mail.browser(), email)).status_code == 201
    op = await mail.oidc()
    rp = await op.register(first_party=False)
    browser = mail.browser()
    login = await login_page_of(op, rp, browser)
    next_path = hidden_inputs(login.text)["next"]
    link = re.search(r'href="(/reset-password\?next=[^"]+)"', login.text)
    assert link, "'Forgot your password?' drops the authorization"

    page = await browser.get(link.group(1).replace("&amp;", "&"))
    asked = await browser.post(
        "/reset-password", data={**hidden_inputs(page.text), "email": email}, headers=BROWSER_POST
    )
    assert asked.status_code == 200
    token = token_of((await mail.last(email, "Reset your password")).link("/reset-password"))
    choose = await browser.get(f"/reset-password?token={token}")
    done = await browser.post(
        "/reset-password/confirm",
        data={**hidden_inputs(choose.text), "new_password": NEW_PASSWORD},
        headers=BROWSER_POST,
    )

    assert done.status_code == 303
    target = urlsplit(done.headers["location"])
    assert target.path == "/login" and parse_qs(target.query)["next"] == [next_path]
    again = await browser.get(done.headers["location"])
    assert "Continue to <strong>Relying Party</strong>" in again.text
    signed_in = await browser.post(
        "/login",
        data={**hidden_inputs(again.text), "email": email, "password": NEW_PASSWORD},
        headers=BROWSER_POST,
    )
    assert signed_in.status_code == 303 and _after_offer(signed_in.headers["location"]) == next_path


async def test_an_emailed_sign_in_link_started_in_an_authorization_returns_to_it(mail: MailApp) -> None:
    email = unique_email("link-rt")
    assert (await signup(mail.browser(), email)).status_code == 201
    op = await mail.oidc()
    rp = await op.register()
    browser = mail.browser()
    login = await login_page_of(op, rp, browser)
    next_path = hidden_inputs(login.text)["next"]
    link = re.search(r'href="(/login/email\?next=[^"]+)"', login.text)
    assert link

    page = await browser.get(link.group(1).replace("&amp;", "&"))
    assert form_action(page)[1:] == ["https://rp.example"]
    asked = await browser.post(
        "/login/email", data={**hidden_inputs(page.text), "email": email}, headers=BROWSER_POST
    )
    assert asked.status_code == 200
    mailed = (await mail.last(email, "Your sign-in link")).link("/login/email/verify")
    opened = await browser.get(mailed.removeprefix(ISSUER))

    assert opened.status_code == 303
    assert _after_offer(opened.headers["location"]) == next_path
    code = await browser.get(next_path)
    assert code.status_code == 303 and code.headers["location"].startswith(rp.redirect_uri + "?code=")


async def test_a_link_confirmed_from_another_browser_never_continues_this_browsers_authorization(
    mail: MailApp,
) -> None:
    """Login CSRF: a victim who started an authorization (and so holds the return cookie) opens a sign-in
    link someone else asked for, for their own account, and confirms it: they must not be carried into
    the application signed in as that account, only to the account page."""
    attacker_email = unique_email("attacker")
    assert (await signup(mail.browser(), attacker_email)).status_code == 201
    op = await mail.oidc()
    rp = await op.register()
    victim = mail.browser()
    login = await login_page_of(op, rp, victim)
    next_path = hidden_inputs(login.text)["next"]
    page = await victim.get("/login/email?next=" + quote(next_path, safe=""))
    started = await victim.post(
        "/login/email",
        data={**hidden_inputs(page.text), "email": unique_email("victim")},
        headers=BROWSER_POST,
    )
    assert started.status_code == 200 and victim.cookies.get("__Host-threshold_return")
    attacker = mail.browser("192.0.2.66")
    page = await attacker.get("/login/email")
    await attacker.post(
        "/login/email", data={**hidden_inputs(page.text), "email": attacker_email}, headers=BROWSER_POST
    )
    link = (await mail.last(attacker_email, "Your sign-in link")).link("/login/email/verify")

    confirm = await victim.get(link.removeprefix(ISSUER))
    assert confirm.status_code == 200 and 'action="/login/email/verify"' in confirm.text
    done = await victim.post("/login/email/verify", data=hidden_inputs(confirm.text), headers=BROWSER_POST)

    assert done.status_code == 303
    assert _after_offer(done.headers["location"]) == "/account", done.headers["location"]
    assert not victim.cookies.get("__Host-threshold_return")


async def test_a_planted_return_cookie_is_followed_only_to_a_same_site_path(mail: MailApp) -> None:
    email = unique_email("planted")
    assert (await signup(mail.browser(), email)).status_code == 201
    browser = mail.browser()

    for n, planted in enumerate(
        ("%2F%2Fevil.example%2Fx", "https%3A%2F%2Fevil.example%2F", "%2F%5Cevil.example")
    ):
        page = await browser.get("/reset-password")
        await browser.post(
            "/reset-password", data={**hidden_inputs(page.text), "email": email}, headers=BROWSER_POST
        )
        token = token_of((await mail.last(email, "Reset your password")).link("/reset-password"))
        browser.cookies.set("__Host-threshold_return", planted, domain="auth.threshold.test")
        choose = await browser.get(f"/reset-password?token={token}")
        done = await browser.post(
            "/reset-password/confirm",
            data={**hidden_inputs(choose.text), "new_password": f"{NEW_PASSWORD} {n}"},
            headers=BROWSER_POST,
        )

        assert done.status_code == 303 and done.headers["location"] == "/login?reset=1", planted


async def test_a_sign_up_that_must_confirm_its_address_returns_to_the_authorization(
    mail_factory: Callable[..., Any],
) -> None:
    mail: MailApp = await mail_factory(email={"verification": "required"})
    op = await mail.oidc()
    rp = await op.register(first_party=False)
    browser = mail.browser()
    login = await login_page_of(op, rp, browser)
    next_path = hidden_inputs(login.text)["next"]
    signup_link = re.search(r'href="(/signup\?next=[^"]+)"', login.text)
    assert signup_link
    page = await browser.get(signup_link.group(1).replace("&amp;", "&"))
    email = unique_email("verify-rt")

    asked = await browser.post(
        "/signup",
        data={**hidden_inputs(page.text), "email": email, "password": NEW_PASSWORD},
        headers=BROWSER_POST,
    )
    assert asked.status_code == 200 and "Check your email" in asked.text
    token = token_of((await mail.last(email)).link("/verify-email"))
    confirm = await browser.get(f"/verify-email?token={token}")
    done = await browser.post("/verify-email", data=hidden_inputs(confirm.text), headers=BROWSER_POST)

    assert done.status_code == 200
    onward = re.search(r'<a class="button" href="(/login\?next=[^"]+)">Continue</a>', done.text)
    assert onward, done.text
    again = await browser.get(onward.group(1).replace("&amp;", "&"))
    assert hidden_inputs(again.text)["next"] == next_path
    assert "Continue to <strong>Relying Party</strong>" in again.text
