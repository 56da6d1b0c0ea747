"""A person whose account is being deleted signs in with a passkey in Chromium: the passkey script
answers the sign-in's `deletion_scheduled` by going on to the keep-the-account page, and keeping it
signs them in (WebAuthn needs a host name: the server answers at http://localhost:<port>)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.mfa_fixtures import Authenticator, localhost_server, session_info
from tests.support import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with localhost_server(tmp_path_factory.mktemp("keep-passkey")) as started:
        yield started


def test_a_passkey_sign_in_leads_to_the_keep_offer_and_keeps_the_account(
    browser: Any, server: Server, shoot: Any
) -> None:
    email = f"keeper.{secrets.token_hex(3)}@example.com"
    context = browser.new_context()
    page = context.new_page()
    authenticator = Authenticator(context, page)
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    page.get_by_role("button", name="Add a passkey").click()
    page.locator("#new-recovery-codes").wait_for(state="visible")
    assert len(authenticator.credentials()) == 1

    page.goto(f"{server.url}/account")
    page.get_by_label("Yes, delete my account").check()
    # the autofill request on the sign-in page waits for a person; the button decides (as people do)
    presence = {"authenticatorId": authenticator.id, "enabled": False}
    authenticator.cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)
    page.get_by_role("button", name="Delete my account").click()  # adding the passkey was a fresh proof
    page.wait_for_url(f"{server.url}/login?deleted=1")
    page.locator("#passkey-login").wait_for(state="visible")
    page.wait_for_timeout(300)  # the page's autofill request is pending first
    authenticator.cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**presence, "enabled": True})
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{server.url}/login/restore?*")
    assert page.get_by_role("heading", name="Keep your account?").is_visible()
    assert session_info(page)["status"] == 401  # no session before the choice
    shoot(page, "keep-offer")
    page.get_by_role("button", name="Keep my account").click()
    page.wait_for_url(f"{server.url}/account")
    assert session_info(page)["body"]["user"]["email"] == email
    context.close()
