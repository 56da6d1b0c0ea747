"""Sign-up, sign-in, session management and password change on the hosted pages, in Chromium."""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server

NEW_PASSWORD = "velvet tundra lantern 1987 quay"


def _sign_up(page: Any, server: Server, email: str) -> None:
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")


def test_signup_sessions_password_and_logout(browser: Any, server: Server, shoot: Any) -> None:
    email = f"e2e.{secrets.token_hex(3)}@example.com"
    laptop = browser.new_context()
    phone = browser.new_context(
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
        viewport={"width": 390, "height": 844},
    )
    page = laptop.new_page()
    page.goto(f"{server.url}/signup")
    shoot(page, "01-signup")
    _sign_up(page, server, email)
    assert email in page.content()
    cookie = next(c for c in laptop.cookies() if c["name"] == "__Host-threshold_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    shoot(page, "02-account")

    # A second device signs in with the password.
    mobile = phone.new_page()
    mobile.goto(f"{server.url}/account")
    mobile.wait_for_url(f"{server.url}/login?next=/account")
    shoot(mobile, "03-login")
    mobile.get_by_label("Email address").fill(email)
    mobile.get_by_label("Password").fill("not the password at all, sorry")
    mobile.get_by_role("button", name="Sign in", exact=True).click()
    assert "incorrect" in mobile.get_by_role("alert").inner_text()
    shoot(mobile, "04-login-error")
    mobile.get_by_label("Password").fill(STRONG_PASSWORD)
    mobile.get_by_role("button", name="Sign in", exact=True).click()
    mobile.wait_for_url(f"{server.url}/account/passkey-upgrade?next=%2Faccount")
    shoot(mobile, "05-passkey-offer")
    mobile.get_by_role("button", name="Not now").click()
    mobile.wait_for_url(f"{server.url}/account")
    shoot(mobile, "05-account-mobile")

    # The laptop sees both sessions and signs the phone out.
    page.reload()
    assert page.locator(".sessions li").count() == 2
    assert "Safari on iPhone" in page.content()
    page.get_by_role("button", name="Sign out Safari on iPhone").click()
    page.wait_for_url(f"{server.url}/account?done=revoked")
    assert page.locator(".sessions li").count() == 1
    shoot(page, "06-revoked")
    mobile.reload()
    mobile.wait_for_url(f"{server.url}/login?next=/account")

    # Password change: new session id for this browser, old password stops working.
    before = next(c for c in laptop.cookies() if c["name"] == "__Host-threshold_session")["value"]
    page.get_by_label("Current password").fill(STRONG_PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url(f"{server.url}/account?done=password")
    after = next(c for c in laptop.cookies() if c["name"] == "__Host-threshold_session")["value"]
    assert after != before
    assert page.get_by_role("status").inner_text().startswith("Your password was changed")
    shoot(page, "07-password-changed")

    # Sign out through the confirmation page.
    page.goto(f"{server.url}/logout")
    shoot(page, "08-logout")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{server.url}/login?logged_out=1")
    page.goto(f"{server.url}/account")
    page.wait_for_url(f"{server.url}/login?next=/account")

    mobile.get_by_label("Email address").fill(email)
    mobile.get_by_label("Password").fill(STRONG_PASSWORD)
    mobile.get_by_role("button", name="Sign in", exact=True).click()
    assert mobile.get_by_role("alert").is_visible()
    mobile.get_by_label("Password").fill(NEW_PASSWORD)
    mobile.get_by_role("button", name="Sign in", exact=True).click()
    mobile.wait_for_url(f"{server.url}/account")  # "Not now" keeps the offer away for a while
    laptop.close()
    phone.close()


def test_pages_work_without_javascript(browser: Any, server: Server, shoot: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    email = f"nojs.{secrets.token_hex(3)}@example.com"
    _sign_up(page, server, email)
    assert email in page.content()
    page.goto(f"{server.url}/logout")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{server.url}/login?logged_out=1")
    shoot(page, "after-logout")
    context.close()


def test_no_csp_violations_and_accessible_labels(browser: Any, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    for path in ("/login", "/signup"):
        page.goto(f"{server.url}{path}")
        for field in page.locator("input:not([type=hidden])").all():
            field_id = field.get_attribute("id")
            assert field_id and page.locator(f"label[for={field_id}]").count() == 1
        color = page.evaluate("getComputedStyle(document.querySelector('button')).backgroundColor")
        assert color == "rgb(58, 91, 217)"  # the themed accent arrived through the nonce'd <style>
    assert not [m for m in messages if "Content Security Policy" in m]
    context.close()
