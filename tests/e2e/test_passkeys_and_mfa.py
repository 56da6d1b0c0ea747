"""Passkeys, TOTP, recovery codes and step-up on the hosted pages, in Chromium with a virtual authenticator.

The pages are opened at http://localhost:<port> (WebAuthn refuses IP-address origins). The virtual
authenticator answers with simulated user presence; switching that simulation off lets a page's
autofill (conditional) request stay pending, the way it does while a person ignores the autofill list.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import Authenticator, localhost_server, session_info

STEP_UP_WINDOW = 10  # seconds; THRESHOLD_MFA__REAUTHENTICATION_WINDOW of the step-up server

# Records the mediation of every navigator.credentials.get() in sessionStorage, so a test can tell an
# autofill (conditional) request from one started by the button after the page has navigated away.
RECORD_MEDIATION = """
if (window.PublicKeyCredential) {
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => {
    const seen = JSON.parse(sessionStorage.getItem("webauthn-get") || "[]");
    seen.push((options && options.mediation) || "modal");
    sessionStorage.setItem("webauthn-get", JSON.stringify(seen));
    return get(options);
  };
}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with localhost_server(tmp_path_factory.mktemp("mfa-e2e")) as server:
        yield server


@pytest.fixture(scope="module")
def step_up_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("mfa-e2e-step-up")
    with localhost_server(data, THRESHOLD_MFA__REAUTHENTICATION_WINDOW=str(STEP_UP_WINDOW)) as server:
        yield server


@pytest.fixture
def shoot(shoot: Any) -> Any:
    """The suite's shoot() with a running number: a test's screenshots sort in the order they were taken."""
    taken = itertools.count(1)

    def take(page: Any, name: str) -> Any:
        return shoot(page, f"{next(taken):02d}-{name}")

    return take


# --- helpers ----------------------------------------------------------------------------------------------


def _email(prefix: str) -> str:
    return f"{prefix}.{secrets.token_hex(3)}@example.com"


def _sign_up(page: Any, server: Server, email: str, shoot: Any) -> None:
    page.goto(f"{server.url}/signup")
    shoot(page, "signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    assert email in page.content()


def _sign_out(page: Any, server: Server, shoot: Any, name: str) -> None:
    page.goto(f"{server.url}/logout")
    shoot(page, f"{name}-logout")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{server.url}/login?logged_out=1")
    assert session_info(page)["status"] == 401


def _password(page: Any, email: str) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _mediations(page: Any) -> list[str]:
    recorded: list[str] = page.evaluate("JSON.parse(sessionStorage.getItem('webauthn-get') || '[]')")
    return recorded


def _wait_for_mediations(page: Any, count: int) -> None:
    """Poll from Python: the pages' CSP (no 'unsafe-eval') stops page.wait_for_function."""
    deadline = time.monotonic() + 10
    while len(_mediations(page)) < count and time.monotonic() < deadline:
        page.wait_for_timeout(50)


def _clear_mediations(page: Any) -> None:
    page.evaluate("sessionStorage.removeItem('webauthn-get')")


def _totp_code(secret: str, last_step: int) -> tuple[str, int]:
    """A code for the earliest step the server still accepts: after the last used one, within ±1 step."""
    step = max(int(time.time() // 30), last_step + 1)
    return pyotp.TOTP(secret).generate_otp(step), step


def _assert_full_width(page: Any, label: str, button: str) -> None:
    """A code field is as wide as its form's button (not an unstyled 20-character box)."""
    field = page.get_by_label(label).bounding_box()
    submit = page.get_by_role("button", name=button, exact=True).first.bounding_box()
    assert field["width"] >= submit["width"] - 2, (field, submit)


def _wrong_code(secret: str) -> str:
    return "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"


def _wait_past(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _enrol_totp(page: Any, server: Server, shoot: Any) -> tuple[str, int, list[str]]:
    """Set up the authenticator app from /account; returns the secret, the step used and the codes."""
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_url(f"{server.url}/account/totp/setup")
    assert page.locator(".qr svg").count() == 1
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    # The whole symbol is drawn (a QR code cropped by CSS cannot be scanned), at a square size.
    qr = page.evaluate(
        """() => {
            const svg = document.querySelector(".qr svg").getBoundingClientRect();
            const symbol = document.querySelector(".qr svg path").getBoundingClientRect();
            return {width: svg.width, height: svg.height,
                    overflow: Math.max(svg.left - symbol.left, svg.top - symbol.top,
                                       symbol.right - svg.right, symbol.bottom - svg.bottom)};
        }"""
    )
    assert qr["width"] >= 150 and abs(qr["width"] - qr["height"]) < 1 and qr["overflow"] < 1, qr
    _assert_full_width(page, "6-digit code", "Turn on")
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    shoot(page, "totp-setup")

    page.get_by_label("6-digit code").fill(_wrong_code(secret))
    page.get_by_role("button", name="Turn on").click()
    assert page.get_by_role("alert").is_visible()
    assert page.locator("#totp-secret").inner_text().strip() == secret  # same enrolment, try again
    shoot(page, "totp-setup-wrong-code")

    code, step = _totp_code(secret, 0)
    page.get_by_label("6-digit code").fill(code)
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url(f"{server.url}/account/totp/confirm")
    assert page.get_by_role("status").inner_text() == "Two-step verification is on."
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    shoot(page, "recovery-codes")
    page.get_by_role("link", name="I saved them").click()
    page.wait_for_url(f"{server.url}/account")
    assert "On. Sign-in asks for a 6-digit code" in page.content()
    assert page.locator("#recovery-count").inner_text() == "10 of 10 recovery codes left."
    return secret, step, codes


# --- 1. the upgrade prompt, then the passkey button and autofill -------------------------------------------


def test_passkey_upgrade_then_button_and_autofill(browser: Any, site: Server, shoot: Any) -> None:
    email = _email("passkey")
    context = browser.new_context()
    context.add_init_script(RECORD_MEDIATION)
    page = context.new_page()
    authenticator = Authenticator(context, page)

    def presence(on: bool) -> None:
        authenticator.cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": authenticator.id, "enabled": on},
        )

    _sign_up(page, site, email, shoot)
    shoot(page, "account-new")
    _sign_out(page, site, shoot, "first")
    shoot(page, "login")

    # Password sign-in: the account has no passkey, so the upgrade prompt comes first.
    _password(page, email)
    page.wait_for_url(f"{site.url}/account/passkey-upgrade?next=%2Faccount")
    assert session_info(page)["body"]["session"]["aal"] == "aal1"
    shoot(page, "passkey-upgrade")
    page.get_by_role("button", name="Add a passkey").click()
    box = page.locator("#new-recovery-codes")
    box.wait_for(state="visible")
    codes = box.locator(".codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert page.get_by_role("button", name="Add a passkey").is_hidden()
    shoot(page, "passkey-upgrade-recovery-codes")
    [credential] = authenticator.credentials()
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"
    assert credential["userName"] == email
    page.get_by_role("link", name="I saved them, continue").click()
    page.wait_for_url(f"{site.url}/account")
    assert page.locator("#passkey-list li").count() == 1
    assert page.locator("#recovery-count").inner_text() == "10 of 10 recovery codes left."
    shoot(page, "account-with-passkey")

    # The button: with presence off the page's autofill request stays pending; the click replaces it.
    presence(False)
    _clear_mediations(page)
    _sign_out(page, site, shoot, "button")
    page.locator("#passkey-login").wait_for(state="visible")
    _wait_for_mediations(page, 1)
    assert _mediations(page) == ["conditional"]
    shoot(page, "login-passkey-button")
    presence(True)
    with page.expect_request(f"{site.url}/api/v1/login/passkey") as posted:
        page.get_by_role("button", name="Sign in with a passkey").click()
    assert posted.value.method == "POST"
    page.wait_for_url(f"{site.url}/account")
    assert _mediations(page) == ["conditional", "modal"]
    session = session_info(page)
    assert session["status"] == 200 and session["body"]["user"]["email"] == email
    assert session["body"]["session"]["aal"] == "aal2"
    assert "hwk" in session["body"]["session"]["amr"] and "pwd" not in session["body"]["session"]["amr"]
    assert "last used" in page.locator("#passkey-list li").inner_text()
    shoot(page, "account-after-button")

    # Autofill: the login page asks for a conditional credential as it loads; picking the passkey
    # (here: the virtual authenticator's simulated presence) signs in without a click.
    _clear_mediations(page)
    page.goto(f"{site.url}/logout")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{site.url}/account")
    assert _mediations(page) == ["conditional"]
    session = session_info(page)
    assert session["body"]["user"]["email"] == email and session["body"]["session"]["aal"] == "aal2"
    assert "hwk" in session["body"]["session"]["amr"]
    shoot(page, "account-after-autofill")

    # A password sign-in now asks for the passkey as the second factor.
    presence(False)
    _sign_out(page, site, shoot, "second-factor")
    _password(page, email)
    page.wait_for_url(f"{site.url}/login/mfa?next=%2Faccount")
    assert page.get_by_role("heading", name="Two-step verification").is_visible()
    assert page.get_by_role("button", name="Use a passkey").is_visible()
    assert page.get_by_label("Code from your authenticator app").count() == 0
    shoot(page, "login-mfa-passkey")
    presence(True)
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{site.url}/account")
    session = session_info(page)["body"]["session"]
    assert session["aal"] == "aal2" and {"pwd", "hwk"} <= set(session["amr"])
    assert len(authenticator.credentials()) == 1
    context.close()


# --- 2. TOTP and recovery codes -------------------------------------------------------------------------


def test_totp_and_recovery_codes(browser: Any, site: Server, shoot: Any) -> None:
    email = _email("totp")
    context = browser.new_context()
    page = context.new_page()
    _sign_up(page, site, email, shoot)
    secret, last_step, codes = _enrol_totp(page, site, shoot)
    shoot(page, "account-with-totp")

    # Password, then a code from the app.
    _sign_out(page, site, shoot, "totp")
    _password(page, email)
    page.wait_for_url(f"{site.url}/login/mfa?next=%2Faccount")
    assert session_info(page)["status"] == 401  # no session before the second factor
    shoot(page, "login-mfa")
    _assert_full_width(page, "Code from your authenticator app", "Verify")
    page.get_by_label("Code from your authenticator app").fill(_wrong_code(secret))
    page.get_by_role("button", name="Verify").first.click()
    assert page.get_by_role("alert").is_visible()
    assert session_info(page)["status"] == 401
    shoot(page, "login-mfa-wrong-code")
    code, last_step = _totp_code(secret, last_step)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Verify").first.click()
    # No passkey yet: the upgrade prompt follows the sign-in; "Not now" keeps it away.
    page.wait_for_url(f"{site.url}/account/passkey-upgrade?next=%2Faccount")
    shoot(page, "passkey-upgrade")
    page.get_by_role("button", name="Not now").click()
    page.wait_for_url(f"{site.url}/account")
    session = session_info(page)["body"]["session"]
    assert session["aal"] == "aal2" and {"pwd", "otp"} <= set(session["amr"])
    shoot(page, "account-after-totp")

    # Password, then a recovery code instead.
    _sign_out(page, site, shoot, "recovery")
    _password(page, email)
    page.wait_for_url(f"{site.url}/login/mfa?next=%2Faccount")
    page.get_by_text("Use a recovery code").click()
    recovery = page.get_by_label("Recovery code")
    recovery.fill(codes[0])
    shoot(page, "login-mfa-recovery")
    page.locator("details.recovery").get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{site.url}/account")
    assert session_info(page)["body"]["session"]["aal"] == "aal2"
    assert page.locator("#recovery-count").inner_text() == "9 of 10 recovery codes left."
    shoot(page, "account-after-recovery-code")

    # The same recovery code a second time is refused on the page.
    _sign_out(page, site, shoot, "reused")
    _password(page, email)
    page.wait_for_url(f"{site.url}/login/mfa?next=%2Faccount")
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0])
    page.locator("details.recovery").get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert page.url.startswith(f"{site.url}/login/mfa")
    assert page.get_by_role("alert").is_visible()
    assert session_info(page)["status"] == 401
    shoot(page, "login-mfa-recovery-reused")

    # A fresh code still works after the refusal.
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[1])
    page.locator("details.recovery").get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{site.url}/account")
    assert page.locator("#recovery-count").inner_text() == "8 of 10 recovery codes left."
    context.close()


# --- 3. step-up before removing a factor ------------------------------------------------------------------


def test_remove_factors_after_step_up(browser: Any, step_up_site: Server, shoot: Any) -> None:
    site = step_up_site
    email = _email("stepup")
    context = browser.new_context()
    page = context.new_page()
    authenticator = Authenticator(context, page)
    # Monotonic times bracket the server's auth_time: started <= auth_time <= signed_up.
    started = time.monotonic()
    _sign_up(page, site, email, shoot)
    signed_up = time.monotonic()
    secret, step, _ = _enrol_totp(page, site, shoot)
    assert time.monotonic() - started < STEP_UP_WINDOW, "enrolment took longer than the window"

    # The sign-in is now older than the window: changing the password asks for the password first.
    _wait_past(signed_up + STEP_UP_WINDOW + 1)
    # Removing the app (a second factor) needs a second factor: the password alone is not offered.
    page.get_by_role("button", name="Remove authenticator app").click()
    page.wait_for_url(f"{site.url}/reauthenticate?next=%2Faccount&factor=1")
    assert page.get_by_role("heading", name="Confirm it's you").is_visible()
    assert "Your password alone cannot change how you sign in" in page.content()
    assert page.get_by_label("Password").count() == 0
    shoot(page, "reauthenticate")
    page.get_by_label("Code from your authenticator app").fill(_wrong_code(secret))
    page.get_by_role("button", name="Confirm with code").click()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label("Password").count() == 0  # still the second-factor step-up
    shoot(page, "reauthenticate-wrong-code")
    code, step = _totp_code(secret, step)
    page.get_by_label("Code from your authenticator app").fill(code)
    started = time.monotonic()
    page.get_by_role("button", name="Confirm with code").click()
    page.wait_for_url(f"{site.url}/account")
    stepped_up = time.monotonic()
    assert "On. Sign-in asks for a 6-digit code" in page.content()  # nothing removed yet
    page.get_by_role("button", name="Remove authenticator app").click()
    page.wait_for_url(f"{site.url}/account?done=totp_removed")
    assert page.get_by_role("status").inner_text() == "The authenticator app was removed."
    assert page.get_by_role("button", name="Set up an authenticator app").is_visible()
    shoot(page, "totp-removed")

    # Add a passkey inside the fresh window, let the window pass, and step up with the passkey.
    page.get_by_role("button", name="Add a passkey").click()
    page.locator("#new-recovery-codes").wait_for(state="visible")
    assert time.monotonic() - started < STEP_UP_WINDOW, "adding the passkey took longer than the window"
    page.get_by_role("link", name="I saved them").click()
    page.wait_for_url(f"{site.url}/account?done=passkey")
    assert page.locator("#passkey-list li").count() == 1
    name = page.locator("#passkey-list li strong").inner_text()
    shoot(page, "passkey-added")
    _wait_past(stepped_up + STEP_UP_WINDOW + 1)
    page.get_by_role("button", name=f"Remove passkey {name}").click()
    page.wait_for_url(f"{site.url}/reauthenticate?next=%2Faccount&factor=1")
    assert page.get_by_role("button", name="Use a passkey").is_visible()
    shoot(page, "reauthenticate-passkey")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{site.url}/account")
    assert page.locator("#passkey-list li").count() == 1
    session = session_info(page)["body"]["session"]
    assert session["aal"] == "aal2" and "hwk" in session["amr"]
    page.get_by_role("button", name=f"Remove passkey {name}").click()
    page.wait_for_url(f"{site.url}/account?done=passkey_removed")
    assert page.locator("#passkey-list").count() == 0
    assert "No passkeys yet" in page.content()
    shoot(page, "passkey-removed")
    assert len(authenticator.credentials()) == 1  # the server forgot it; the device still holds it
    context.close()


# --- 4. managing passkeys: add with JavaScript, rename and remove without ---------------------------------


def test_manage_passkeys(browser: Any, site: Server, shoot: Any) -> None:
    email = _email("manage")
    context = browser.new_context()
    page = context.new_page()
    authenticator = Authenticator(context, page)
    _sign_up(page, site, email, shoot)

    # The first passkey from the account page shows the recovery codes in place.
    page.get_by_role("button", name="Add a passkey").click()
    box = page.locator("#new-recovery-codes")
    box.wait_for(state="visible")
    assert box.locator(".codes code").count() == 10
    shoot(page, "first-passkey-codes")
    box.get_by_role("link", name="I saved them").click()
    page.wait_for_url(f"{site.url}/account?done=passkey")
    assert page.get_by_role("status").inner_text() == "Your passkey was added."
    assert page.locator("#passkey-list li").count() == 1

    # A second device: its passkey is added straight away (no new codes).
    authenticator.replace()
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url(f"{site.url}/account?done=passkey")
    page.locator("#passkey-list li").nth(1).wait_for()
    assert page.locator("#passkey-list li").count() == 2
    assert page.locator("#new-recovery-codes").is_hidden()
    shoot(page, "two-passkeys")

    # Without JavaScript: rename and remove with plain forms.
    plain = browser.new_context(java_script_enabled=False)
    plain.add_cookies(context.cookies())
    nojs = plain.new_page()
    nojs.goto(f"{site.url}/account")
    assert nojs.locator("#passkey-list li").count() == 2
    assert nojs.get_by_role("button", name="Add a passkey").is_hidden()
    shoot(nojs, "account-no-js")
    first = nojs.locator("#passkey-list li").nth(0)
    first.get_by_role("textbox").fill("   ")
    first.get_by_role("button", name="Rename").click()
    assert nojs.get_by_role("alert").is_visible()
    shoot(nojs, "rename-refused")
    first = nojs.locator("#passkey-list li").nth(0)
    first.get_by_role("textbox").fill("Work laptop")
    first.get_by_role("button", name="Rename").click()
    nojs.wait_for_url(f"{site.url}/account?done=passkey_renamed")
    assert nojs.get_by_role("status").inner_text() == "The passkey was renamed."
    assert "Work laptop" in nojs.locator("#passkey-list").inner_text()
    shoot(nojs, "renamed")
    nojs.get_by_role("button", name="Remove passkey Work laptop").click()
    nojs.wait_for_url(f"{site.url}/account?done=passkey_removed")
    assert nojs.locator("#passkey-list li").count() == 1
    assert "Work laptop" not in nojs.locator("#passkey-list").inner_text()
    shoot(nojs, "removed")
    plain.close()

    page.reload()
    assert page.locator("#passkey-list li").count() == 1
    context.close()
