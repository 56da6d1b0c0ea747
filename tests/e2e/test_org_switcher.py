"""The organization switcher on the account page, in Chromium: a person in two organizations switches
between them with the form (JavaScript off), under a new session id each time; the old cookie is dead."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.support import run_cli

SESSION_COOKIE = "__Host-threshold_session"


def _cli(server: Server, *args: str) -> Any:
    done = run_cli(*args, "--json", env=server.env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _session_cookie(context: Any) -> dict[str, Any]:
    cookie: dict[str, Any] = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    return cookie


def test_a_person_in_two_organizations_switches_between_them(
    browser: Any, server: Server, shoot: Any
) -> None:
    tag = secrets.token_hex(3)
    acme = _cli(server, "orgs", "create", "--name", f"Acme {tag}")
    globex = _cli(server, "orgs", "create", "--name", f"Globex {tag}")
    email = f"e2e.switch.{tag}@example.com"

    context = browser.new_context(java_script_enabled=False)  # a plain form: no script needed
    page = context.new_page()
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    assert page.locator("#organization").count() == 0  # a member of nothing: no switcher

    _cli(server, "orgs", "members", "add", acme["slug"], email, "--role", "admin")
    _cli(server, "orgs", "members", "add", globex["slug"], email, "--role", "member")
    page.reload()
    section = page.get_by_role("region", name="Organization")
    assert "No organization is selected" in section.inner_text()
    switcher = page.get_by_label("Switch to organization")
    assert switcher.evaluate("element => element.tagName") == "SELECT"
    assert [o.strip() for o in switcher.locator("option").all_inner_texts()] == [
        f"{acme['name']} (admin)",
        f"{globex['name']} (member)",
    ]
    shoot(page, "01-two-organizations")
    first_cookie = _session_cookie(context)

    switcher.select_option(globex["id"])
    page.get_by_role("button", name="Switch organization").click()
    page.wait_for_url(f"{server.url}/account?done=organization")
    assert page.get_by_role("status").inner_text().startswith("The organization was switched")
    assert f"Working in {globex['name']} as member" in page.locator("#selected-org").inner_text()
    assert page.get_by_label("Switch to organization").input_value() == globex["id"]
    shoot(page, "02-switched-to-globex")
    second_cookie = _session_cookie(context)
    assert second_cookie["value"] != first_cookie["value"]

    page.get_by_label("Switch to organization").select_option(acme["id"])
    page.get_by_role("button", name="Switch organization").click()
    page.wait_for_url(f"{server.url}/account?done=organization")
    assert f"Working in {acme['name']} as admin" in page.locator("#selected-org").inner_text()
    assert page.locator(".sessions li").count() == 1  # each switch replaced the session, none piled up
    shoot(page, "03-switched-to-acme")
    assert _session_cookie(context)["value"] not in (first_cookie["value"], second_cookie["value"])

    # The cookies of before the switches sign nobody in any more.
    for old in (first_cookie, second_cookie):
        stale = browser.new_context()
        stale.add_cookies([old])
        stale_page = stale.new_page()
        stale_page.goto(f"{server.url}/account")
        stale_page.wait_for_url(f"{server.url}/login?next=/account")
        stale.close()
    context.close()


def test_the_switcher_is_labelled_and_breaks_no_content_security_policy(browser: Any, server: Server) -> None:
    tag = secrets.token_hex(3)
    email = f"e2e.switch.a11y.{tag}@example.com"
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    for name in ("One", "Two"):
        org = _cli(server, "orgs", "create", "--name", f"{name} {tag}")
        _cli(server, "orgs", "members", "add", org["slug"], email, "--role", "member")
    page.reload()

    assert page.locator("label[for=org-select]").count() == 1
    page.get_by_label("Switch to organization").focus()
    page.keyboard.press("Tab")  # the button follows the select in the focus order
    assert page.evaluate("document.activeElement.textContent").strip() == "Switch organization"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/account?done=organization")
    assert "Working in One" in page.locator("#selected-org").inner_text()
    assert not [m for m in messages if "Content Security Policy" in m]
    context.close()
