"""Sign-in by email and password reset on the hosted pages, in Chromium, with the mail delivered by the
server's background worker to a real SMTP server (aiosmtpd) and read from there."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import localhost_server, session_info
from tests.e2e.walks import sign_up_from_sign_in_page
from tests.email.helpers import SmtpSink

NEW_PASSWORD = "copper meadow violin 2031 drift"
SIGNED_IN = re.compile(r".*/account(/passkey-upgrade\?.*)?$")


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Server]:
    """`threshold serve` on http://localhost:<port>, mailing through the test SMTP server."""
    with localhost_server(tmp_path_factory.mktemp("email-e2e"), THRESHOLD_SMTP_URL=smtp.url) as server:
        yield server


def _email() -> str:
    return f"e2e.mail.{secrets.token_hex(4)}@example.com"


def _sign_up(browser: Any, server: Server, email: str) -> Any:
    """A new account, signed up on the hosted page; returns that page (signed in)."""
    page = browser.new_context().new_page()
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    return page


def _landed_signed_in(page: Any, server: Server, email: str) -> None:
    """After a sign-in: past the passkey offer (if shown) to the account page, signed in as `email`."""
    page.wait_for_url(SIGNED_IN)
    if "/account/passkey-upgrade" in page.url:
        page.get_by_role("button", name="Not now").click()
        page.wait_for_url(f"{server.url}/account")
    assert email in page.content()


def _ask_for_a_sign_in_message(page: Any, server: Server, email: str, shoot: Any) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name="Email me a sign-in link").click()
    page.wait_for_url(re.compile(r".*/login/email(\?.*)?$"))
    shoot(page, "01-request")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    assert "we sent it a link and a 6-digit code" in page.get_by_role("status").inner_text()
    shoot(page, "02-check-mail")


def test_magic_link_in_the_same_browser_signs_in(
    browser: Any, server: Server, smtp: SmtpSink, shoot: Any
) -> None:
    email = _email()
    _sign_up(browser, server, email).context.close()
    page = browser.new_context().new_page()
    _ask_for_a_sign_in_message(page, server, email, shoot)
    message = smtp.wait_for(email, "Your sign-in link")
    link = message.link("/login/email/verify")
    assert link.startswith(f"{server.url}/login/email/verify?token=")

    page.goto(link)
    _landed_signed_in(page, server, email)
    shoot(page, "03-signed-in")
    session = session_info(page)
    assert session["status"] == 200
    assert session["body"]["session"]["amr"] == ["email"] and session["body"]["session"]["aal"] == "aal1"
    assert not any(c["name"] == "__Host-threshold_email_login" for c in page.context.cookies())

    # The link is spent.
    page.goto(link)
    assert "invalid, expired or was already used" in page.get_by_role("alert").inner_text()
    page.context.close()


def test_the_code_typed_in_the_browser_that_asked_signs_in(
    browser: Any, server: Server, smtp: SmtpSink, shoot: Any
) -> None:
    email = _email()
    _sign_up(browser, server, email).context.close()
    page = browser.new_context().new_page()
    _ask_for_a_sign_in_message(page, server, email, shoot)
    code = smtp.wait_for(email, "Your sign-in link").code()
    page.get_by_label("6-digit code").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Sign in").click()
    assert "code" in page.get_by_role("alert").inner_text().lower()
    shoot(page, "03-wrong-code")
    page.get_by_label("6-digit code").fill(code)
    page.get_by_role("button", name="Sign in").click()
    _landed_signed_in(page, server, email)
    shoot(page, "04-signed-in")
    assert session_info(page)["body"]["session"]["amr"] == ["email"]
    page.context.close()


def test_the_link_in_another_browser_asks_before_signing_in(
    browser: Any, server: Server, smtp: SmtpSink, shoot: Any
) -> None:
    email = _email()
    _sign_up(browser, server, email).context.close()
    laptop = browser.new_context().new_page()
    _ask_for_a_sign_in_message(laptop, server, email, shoot)
    message = smtp.wait_for(email, "Your sign-in link")

    phone = browser.new_context().new_page()
    phone.goto(message.link("/login/email/verify"))
    assert "requested from another browser or device" in phone.content()
    assert session_info(phone)["status"] == 401  # opening the link signed nobody in
    shoot(phone, "03-confirm")
    phone.get_by_role("button", name="Yes, sign in on this device").click()
    _landed_signed_in(phone, server, email)
    shoot(phone, "04-signed-in-elsewhere")

    # The code of the same message is spent with it.
    laptop.get_by_label("6-digit code").fill(message.code())
    laptop.get_by_role("button", name="Sign in").click()
    assert "not valid or was already used" in laptop.get_by_role("alert").inner_text()
    assert session_info(laptop)["status"] == 401
    for page in (laptop, phone):
        page.context.close()


def test_password_reset_on_the_hosted_pages(browser: Any, server: Server, smtp: SmtpSink, shoot: Any) -> None:
    email = _email()
    old_session = _sign_up(browser, server, email)

    page = browser.new_context().new_page()
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(f"{server.url}/reset-password")
    shoot(page, "01-request")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    assert "we sent it a link to choose a new password" in page.get_by_role("status").inner_text()
    shoot(page, "02-check-mail")

    link = smtp.wait_for(email, "Reset your password").link("/reset-password")
    assert link.startswith(f"{server.url}/reset-password?token=")
    page.goto(link)
    page.get_by_label("New password").fill("too short")
    page.get_by_role("button", name="Set the new password").click()
    assert "15" in page.get_by_role("alert").inner_text()  # refused; the link still works
    shoot(page, "03-too-short")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    page.wait_for_url(f"{server.url}/login?reset=1")
    assert "Your password was changed" in page.get_by_role("status").inner_text()
    shoot(page, "04-changed")

    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _landed_signed_in(page, server, email)
    shoot(page, "05-signed-in")

    # The reset ended the session that was open elsewhere, and told the owner.
    old_session.goto(f"{server.url}/account")
    old_session.wait_for_url(f"{server.url}/login?next=/account")
    smtp.wait_for(email, "Your password was changed")
    page.goto(link)
    assert "invalid, expired or was already used" in page.get_by_role("alert").inner_text()
    for open_page in (page, old_session):
        open_page.context.close()


def test_an_invitation_walked_from_the_mailbox_through_sign_up_and_back(
    browser: Any, server: Server, smtp: SmtpSink, shoot: Any
) -> None:
    """The emailed invitation opened by someone without an account: to the sign-in page, on to
    sign-up, back to the invitation after signing up, accepted with the form."""
    from tests.support import run_cli

    email = _email()
    created = run_cli("orgs", "create", "--name", f"Acme {secrets.token_hex(3)}", "--json", env=server.env)
    assert created.returncode == 0, created.stderr
    org = json.loads(created.stdout)
    invited = run_cli("orgs", "invite", org["slug"], email, "--role", "admin", env=server.env)
    assert invited.returncode == 0, invited.stderr
    link = smtp.wait_for(email, "You are invited to join").link("/invitations/accept")

    page = browser.new_context().new_page()
    page.goto(link)
    page.wait_for_url(re.compile(r".*/login\?next=.*invitations.*"))
    sign_up_from_sign_in_page(page, email, STRONG_PASSWORD, going_to=".*invitations.*")
    page.wait_for_url(re.compile(r".*/invitations/accept\?token=.*"))
    assert org["name"] in page.content() and "admin" in page.content()
    shoot(page, "invitation")
    page.get_by_role("button", name="Accept the invitation").click()
    assert f"You are now admin of {org['name']}" in page.get_by_role("status").inner_text()
    shoot(page, "invitation-accepted")
    members = run_cli("orgs", "members", "list", org["slug"], "--json", env=server.env)
    assert [m["email"] for m in json.loads(members.stdout)] == [email]
    page.context.close()
