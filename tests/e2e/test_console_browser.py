"""The operators' console in Chromium, as an operator walks it: access granted with the CLI, the way in
through a step-up to a second factor, each action through its form, a step-up when the window has
passed, refusals for people without access, a forged cross-site form, and axe-core on every page.

The accessibility check runs axe-core (npm, tests/interop/node) in the page and fails on any serious or
critical violation of WCAG 2.1 A/AA or axe's best practices.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.walks import new_person, sign_in_with_password
from tests.support import free_port, make_deployment, need, run_cli

AXE = Path(__file__).resolve().parents[1] / "interop" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WINDOW = 25
"""The server's re-authentication window (seconds): short, so that the test sees it pass."""
STEP = 20_000


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with make_deployment(
        tmp_path_factory.mktemp("console"),
        "sqlite",
        THRESHOLD_LOG_LEVEL="info",
        THRESHOLD_MFA__REAUTHENTICATION_WINDOW=str(WINDOW),
    ) as deployment:
        yield deployment.start()


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        need("axe-core", f"{AXE} missing: npm ci --prefix tests/interop/node (make install does it)")
    return AXE.read_text()


def assert_accessible(page: Any, axe_source: str, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)  # through the DevTools protocol: the page's CSP does not apply to it
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values:
                ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: {serious}"


class Operator:
    """The operator's tab, and what they prove with: the authenticator app and the recovery codes."""

    def __init__(self, page: Any, server: Server, axe: str) -> None:
        self.page = page
        self.server = server
        self.axe = axe
        self.secret = ""
        self.last_step = 0
        self.recovery_codes: list[str] = []
        self.step_ups = 0

    def code(self) -> str:
        """A code for the earliest step the server still accepts (each step's code is good once)."""
        step = max(int(time.time() // 30), self.last_step + 1)
        self.last_step = step
        return pyotp.TOTP(self.secret).generate_otp(step)

    def visit(self, path: str, heading: str) -> None:
        self.page.goto(self.server.url + path)
        assert self.page.get_by_role("heading", level=1).inner_text() == heading, self.page.content()
        assert_accessible(self.page, self.axe, path)

    def step_up(self, *, to_a_page: bool = True) -> None:
        """On the step-up page: the authenticator app's next code. `to_a_page=False` when what it goes
        on to is a download (an export): the tab then stays where it is."""
        assert "/reauthenticate" in self.page.url, self.page.url
        self.page.get_by_label("Code from your authenticator app").fill(self.code())
        self.page.get_by_role("button", name="Confirm with code").click()
        if to_a_page:
            self.page.wait_for_url(re.compile(r".*/admin/.*"))
        self.step_ups += 1

    def submit(self, button: str, *, scope: Any = None, done: str | None = None) -> None:
        """Press a console form's button; if the window has passed meanwhile, step up and press it again."""
        where = scope or self.page
        where.get_by_role("button", name=button, exact=True).click()
        self.page.wait_for_load_state()
        if "/reauthenticate" in self.page.url:
            self.step_up()
            where = scope or self.page
            where.get_by_role("button", name=button, exact=True).click()
            self.page.wait_for_load_state()
        if done is not None:
            assert self.page.get_by_role("status").inner_text() == done, self.page.content()


def enrol_totp(operator: Operator) -> None:
    page, url = operator.page, operator.server.url
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_url(f"{url}/account/totp/setup")
    operator.secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("6-digit code").fill(operator.code())
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url(f"{url}/account/totp/confirm")
    operator.recovery_codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    page.get_by_role("link", name="I saved them").click()
    page.wait_for_url(f"{url}/account")


def refused_generically(page: Any) -> None:
    assert page.get_by_role("alert").inner_text() == "You don't have access to this page."
    text = page.content().lower()
    assert "console" not in text and "operator" not in text and "second factor" not in text


class AttackerSite:
    """A page on another site (localhost, not 127.0.0.1) whose form posts to the console on load."""

    def __init__(self, target: str) -> None:
        body = (
            f'<!doctype html><form method="post" action="{target}">'
            '<input name="csrf_token" value="guess"></form>'
            "<script>document.forms[0].submit()</script>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_operator_walks_the_console(
    browser: Any, console_server: Server, axe_source: str, shoot: Any
) -> None:
    server, env = console_server, console_server.env
    operator_email = new_person(env, "operator")
    person_email = new_person(env, "person")
    granted = server_cli(env, "users", "grant-admin", operator_email)
    assert "now has console access" in granted

    # A person without access: the generic refusal, whatever they try.
    outsider = browser.new_context()
    tab = outsider.new_page()
    tab.goto(f"{server.url}/login?next=/admin/")
    sign_in_with_password(tab, person_email, STRONG_PASSWORD, back_to=f"{server.url}/admin/")
    refused_generically(tab)
    assert_accessible(tab, axe_source, "refusal")
    tab.goto(f"{server.url}/admin/users")
    refused_generically(tab)
    outsider.close()

    context = browser.new_context(accept_downloads=True)
    operator = Operator(context.new_page(), server, axe_source)
    page = operator.page
    page.set_default_timeout(STEP)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(page.url + " " + m.text) if m.type == "error" else None)

    # Signed in with the password alone (aal1) and no second factor: sent to set one up first.
    page.goto(f"{server.url}/login?next=/admin/")
    sign_in_with_password(page, operator_email, STRONG_PASSWORD, back_to=f"{server.url}/admin/")
    assert page.get_by_role("heading", level=1).inner_text() == "Second factor needed"
    assert page.get_by_role("link", name="Confirm it's you").count() == 0
    page.get_by_role("link", name="Go to your account").click()
    page.wait_for_url(f"{server.url}/account")
    assert page.get_by_role("link", name="Operators' console").count() == 1
    enrol_totp(operator)  # the session is still aal1: its sign-in proved the password alone
    page.goto(f"{server.url}/admin/users")
    assert page.get_by_role("heading", level=1).inner_text() == "Second factor needed"
    assert_accessible(page, axe_source, "aal2 required")
    shoot(page, "aal2-required")
    page.get_by_role("link", name="Confirm it's you").click()
    page.wait_for_url(re.compile(r".*/reauthenticate\?.*factor=1"))
    operator.step_up()  # password + authenticator app: aal2
    assert page.url == f"{server.url}/admin/users"
    stepped_up_at = time.monotonic()

    operator.visit("/admin/", "Operators' console")
    assert operator_email in page.content()

    # Users: the search (htmx: the results change in place), the account's page, and its actions.
    operator.visit("/admin/users", "Users")
    page.get_by_label("Address (or its beginning) or account id").fill(person_email[:12])
    page.wait_for_url(re.compile(r".*/admin/users\?q=person"))
    results = page.locator("#user-results")
    results.get_by_role("link", name=person_email).wait_for()
    assert results.get_by_role("link", name=operator_email).count() == 0
    shoot(page, "users-search")
    results.get_by_role("link", name=person_email).click()
    page.wait_for_url(re.compile(r".*/admin/users/[0-9a-z]+$"))
    person_page = page.url.removeprefix(server.url)
    assert_accessible(page, axe_source, "user")
    end_one = page.get_by_role("button", name=re.compile(r"^End the session on .+ from 127\.0\.0\.1$"))
    assert end_one.count() == 1  # the person's one session (the outsider's tab above)
    operator.submit(end_one.inner_text().strip(), done="The session has ended.")
    assert "No active sessions." in page.content()
    operator.submit(
        "Disable the account", done="The account is disabled and every session and token of it has ended."
    )
    assert_accessible(page, axe_source, "user after a change")

    # The window passes: the next change asks for the second factor again, then goes through.
    remaining = WINDOW + 1 - (time.monotonic() - stepped_up_at)
    if remaining > 0:
        page.wait_for_timeout(remaining * 1000)
    page.get_by_role("button", name="Enable the account").click()
    page.wait_for_url(re.compile(r".*/reauthenticate\?next=%2Fadmin%2Fusers%2F.*factor=1"))
    assert_accessible(page, axe_source, "step-up")
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(operator.recovery_codes[0])
    page.get_by_role("button", name="Confirm with recovery code").click()
    page.wait_for_url(server.url + person_page)
    operator.submit("Enable the account", done="The account is enabled again.")
    operator.submit("Require a second factor", done="The account must now have a second factor.")
    operator.submit(
        "Stop requiring a second factor", done="The account no longer has to have a second factor."
    )
    operator.submit("End every session and token", done="Every session and token of the account has ended.")
    page.get_by_label("Waiting period in hours").fill("24")
    operator.submit(
        "Start recovery", done="Recovery started: the account's factors are reset after the waiting period."
    )
    assert "Recovery pending" in page.content()
    operator.submit("Cancel this recovery", done="The pending recovery is cancelled.")

    # Clients: register (the secret shown once), edit, rotate, delete.
    operator.visit("/admin/clients", "OAuth clients")
    page.get_by_label("Name", exact=True).fill("Shop")
    page.get_by_label("Redirect URIs, one per line", exact=True).fill("https://shop.example/callback")
    operator.submit("Register the client")
    assert page.get_by_role("heading", level=1).inner_text() == "Client registered: Shop"
    assert_accessible(page, axe_source, "client secret")
    secret = page.locator(".secret").inner_text()
    assert len(secret) >= 32
    page.get_by_role("link", name="Go to the client").click()
    assert secret not in page.content()
    assert_accessible(page, axe_source, "client")
    page.get_by_label("Redirect URIs, one per line", exact=True).fill(
        "https://shop.example/callback\nhttps://shop.example/cb2"
    )
    operator.submit("Save", done="The client is saved.")
    assert (
        "https://shop.example/cb2"
        in page.get_by_label("Redirect URIs, one per line", exact=True).input_value()
    )
    operator.submit("Rotate the secret")
    assert page.get_by_role("heading", level=1).inner_text() == "Secret rotated: Shop"
    assert page.locator(".secret").inner_text() != secret
    page.get_by_role("link", name="Go to the client").click()
    operator.submit("Delete the client", done="The client is deleted and its tokens revoked.")
    assert "No clients yet." in page.content()

    # Signing keys.
    operator.visit("/admin/keys", "Signing keys")
    operator.submit("Rotate now", done="The signing keys are rotated.")
    assert page.locator("td", has_text="retired").count() >= 1

    # Organizations: create, claim and verify a domain, make and revoke a SCIM token.
    operator.visit("/admin/orgs", "Organizations")
    page.get_by_label("Name", exact=True).fill("Acme Corp")
    page.get_by_label("Slug (optional)").fill("acme")
    operator.submit("Create", done="The organization is created.")
    assert_accessible(page, axe_source, "organization")
    page.get_by_label("Claim a domain").fill("acme.example")
    operator.submit("Claim", done="The domain is claimed: publish the TXT record below, then verify it.")
    page.get_by_label("On my word, without DNS (acme.example)").check()
    operator.submit("Verify acme.example", done="The domain is verified.")
    page.get_by_label("New token for (e.g. the identity provider)").fill("Entra ID")
    operator.submit("Make a token")
    token = page.locator(".secret").inner_text()
    assert token.startswith("scim_")
    assert_accessible(page, axe_source, "scim token")
    page.get_by_role("link", name="Back to Acme Corp").click()
    assert token not in page.content()
    operator.submit("Revoke Entra ID", done="The SCIM token is revoked.")
    connection = server_cli(
        env,
        *("orgs", "connections", "add", "acme", "--type", "oidc", "--name", "Acme IdP"),
        *("--issuer", "http://127.0.0.1:9/idp", "--client-id", "threshold", "--client-secret", "not-used"),
    )
    assert connection
    page.reload()
    operator.submit("Remove Acme IdP", done="The connection is removed.")
    assert "No connections." in page.content()

    # The audit log: filtered, and exported.
    operator.visit("/admin/audit", "Audit log")
    page.get_by_label("Account (address or id)").fill(person_email)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*/admin/audit\?user="))
    kinds = page.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert {"user_disabled", "user_enabled", "recovery_requested"} <= set(kinds), kinds
    assert_accessible(page, axe_source, "audit filtered")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export as CSV").click()
        page.wait_for_load_state()
        if "/reauthenticate" in page.url:  # the window passed (a slow run): the export follows the step-up
            operator.step_up(to_a_page=False)
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["kind"] for r in rows} >= {"user_disabled", "user_enabled"}
    assert all(r["user_id"] == rows[0]["user_id"] for r in rows)

    # A form posted from another site, in the operator's browser: refused, nothing changes.
    attacker = AttackerSite(f"{server.url}{person_page}/disable")
    try:
        trap = context.new_page()
        trap.goto(attacker.url)
        trap.wait_for_url(f"{server.url}{person_page}/disable")
        assert "You don't have access to this page." in trap.content() or "403" in trap.content()
        trap.close()
    finally:
        attacker.close()
    page.goto(server.url + person_page)
    assert page.get_by_role("button", name="Disable the account").count() == 1  # still enabled

    # Access taken back with the CLI: the next page is the generic refusal.
    assert "no longer has console access" in server_cli(env, "users", "grant-admin", operator_email, "--off")
    page.goto(f"{server.url}/admin/")
    refused_generically(page)
    unexpected = [e for e in errors if "status of 403" not in e]  # the refusals are 403 pages
    assert not unexpected, unexpected
    context.close()


def server_cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout
