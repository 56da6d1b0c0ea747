"""The round trip of issue 10, in Chromium: an application on another origin and another site sends the
browser to Threshold to sign in, and the person lands back in the application.

Two applications, each on an OpenID Connect library we did not write, each at that library's defaults:
Authlib's Starlette client (tests/e2e/rp/authlib_app.py, under uvicorn) and panva's openid-client 6
(tests/e2e/rp/openid_client_app.mjs, under Node). Each is registered twice with the real CLI: `threshold
clients create` with nothing but its redirect and post-logout URIs (a third-party client: consent is asked),
and the same with `--first-party` (no consent).

Threshold serves http://localhost:<port> (WebAuthn needs a host name, not an IP address); the applications
serve http://127.0.0.1:<port>, so they are another origin and another site, and the browser really crosses
from one to the other. Every page of every scenario is watched for Content-Security-Policy violations (the
`securitypolicyviolation` event, reported to Python through a binding, and Chromium's console message) and
for uncaught page errors: the round trip must not raise any.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from tests.blackbox.conftest import Browser
from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import AUTHENTICATOR, Authenticator, localhost_server
from tests.email.helpers import SmtpSink
from tests.support import Process, free_port, need, spawn
from threshold.i18n import Catalogues
from threshold.web.oauth.routes import SCOPE_TEXT

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
RP_DIR = Path(__file__).parent / "rp"
NODE_PACKAGES = ROOT / "tests" / "interop" / "node"
LIBRARIES = ("authlib", "openid-client")
TIMEOUT_MS = 10_000  # for one step in the browser; a round trip that stops somewhere fails well before it
ROUND_TRIP_SECONDS = 15.0
STUCK_SECONDS = 3.0  # after a CSP violation, or on a page that is no step of an authorization

Consent = Literal["allow", "deny"]

# Reports every CSP violation of every document to Python (window.__cspViolation is a Playwright binding, so
# the report survives the navigation that may follow it).
RECORD_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation({
    directive: event.effectiveDirective || event.violatedDirective,
    blocked: event.blockedURI,
    document: event.documentURI,
    disposition: event.disposition,
    source: event.sourceFile ? `${event.sourceFile}:${event.lineNumber}` : "",
  });
}, true);
"""

# Records the mediation of each navigator.credentials.get(): the passkey scenario waits for the sign-in
# page's autofill request before it presses the button (as tests/e2e/test_passkeys_and_mfa.py does).
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

# A JSON API call from a page on Threshold's origin, with the browser's cookies and the CSRF double submit.
API_CALL = """async ([method, path, body]) => {
  const csrf = await (await fetch("/api/v1/csrf", {credentials: "same-origin"})).json();
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf.token},
    body: body === null ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch (error) {}
  return {status: response.status, body: json, text};
}"""


# --- the provider and the applications ------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Server]:
    """`threshold serve` on http://localhost:<port> (SQLite), mailing through the test SMTP server."""
    settings = {
        "THRESHOLD_SMTP_URL": smtp.url,
        # every scenario signs up a new person from the same address; the defaults (20 an hour) would do
        # today, headroom keeps a rerun against a slow machine from tripping them
        "THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP": "1000",
        "THRESHOLD_EMAIL__PER_IP": "1000",
    }
    with localhost_server(tmp_path_factory.mktemp("round-trip"), **settings) as server:
        yield server


@dataclass(frozen=True)
class RelyingParty:
    """One running application: where it is, which client it signs in as, and its log."""

    library: str
    url: str
    client_id: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass(frozen=True)
class Applications:
    """One library's application, registered with the CLI's defaults (third party) and with --first-party."""

    library: str
    third_party: RelyingParty
    first_party: RelyingParty


def _command(library: str) -> list[str]:
    if library == "authlib":
        return [
            sys.executable,
            *("-m", "uvicorn", "--factory", "tests.e2e.rp.authlib_app:from_environment"),
            *("--host", "127.0.0.1", "--log-level", "info"),
        ]
    node = shutil.which("node")
    if node is None:
        need("Node", "no `node` on PATH (Debian: apt-get install nodejs npm)")
    assert node is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        need("Node", f"openid-client 6 needs Node >= 20, found {version}")
    if not (NODE_PACKAGES / "node_modules" / "openid-client" / "package.json").is_file():
        need("openid-client", f"npm packages not installed: run `npm ci --prefix {NODE_PACKAGES}`")
    return [node, str(RP_DIR / "openid_client_app.mjs")]


def _registering(provider: Server, name: str, app_url: str, *, first_party: bool) -> subprocess.Popen[str]:
    """Start `threshold clients create` with the application's URIs and otherwise the defaults."""
    args = [
        *(sys.executable, "-m", "threshold", "clients", "create", "--name", name),
        *("--redirect-uri", f"{app_url}/callback", "--post-logout-redirect-uri", f"{app_url}/"),
        *(("--first-party",) if first_party else ()),
        "--json",
    ]
    return subprocess.Popen(args, env=provider.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _registered(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    created = json.loads(stdout)
    return str(created["client_id"]), str(created["client_secret"])


@pytest.fixture(scope="module", params=LIBRARIES)
def apps(
    request: pytest.FixtureRequest, provider: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Applications]:
    """The library's application twice, each registered and started in parallel with the other."""
    library: str = request.param
    command = _command(library)
    logs = tmp_path_factory.mktemp(f"rp-{library}")
    ports = {"third-party": free_port(), "first-party": free_port()}
    registering = {
        kind: _registering(
            provider,
            f"Example app ({library}, {kind})",
            f"http://127.0.0.1:{port}",
            first_party=kind == "first-party",
        )
        for kind, port in ports.items()
    }
    clients = {kind: _registered(process) for kind, process in registering.items()}
    running: dict[str, tuple[RelyingParty, Process]] = {}
    try:
        for kind, port in ports.items():
            url = f"http://127.0.0.1:{port}"
            client_id, client_secret = clients[kind]
            env = {
                **os.environ,
                "RP_ISSUER": provider.url,
                "RP_CLIENT_ID": client_id,
                "RP_CLIENT_SECRET": client_secret,
                "RP_BASE_URL": url,
                "RP_PORT": str(port),
            }
            app = RelyingParty(library=library, url=url, client_id=client_id, log=logs / f"{kind}.log")
            argv = [*command, *(("--port", str(port)) if library == "authlib" else ())]
            running[kind] = (app, spawn(argv, log=app.log, env=env, cwd=ROOT))
        for app, process in running.values():
            process.wait_until_ready(f"{app.url}/", timeout=60, what=f"the {app.library} application")
        yield Applications(
            library=library, third_party=running["third-party"][0], first_party=running["first-party"][0]
        )
    finally:
        for _, process in running.values():
            process.stop(timeout=10)


@pytest.fixture
def shoot(shoot: Any) -> Any:
    """The suite's shoot() with a running number: a test's screenshots sort in the order they were taken."""
    taken = itertools.count(1)

    def take(page: Any, name: str) -> Any:
        return shoot(page, f"{next(taken):02d}-{name}")

    return take


# --- what the browser reports ---------------------------------------------------------------------------


@dataclass
class Watch:
    """One browser context and what it reported: CSP violations, console messages, uncaught errors, and the
    trail of pages its tab committed."""

    context: Any
    page: Any = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.expose_binding("__cspViolation", lambda _source, report: self.violations.append(report))
        self.context.add_init_script(RECORD_CSP)
        self.context.on("console", self._console)
        self.context.on("weberror", lambda error: self.errors.append(str(error.error)))
        self.page = self.context.new_page()
        self.page.on("framenavigated", self._navigated)

    def _console(self, message: Any) -> None:
        where = message.location.get("url", "") if isinstance(message.location, dict) else ""
        self.console.append(f"[{message.type}] {message.text} ({where})")

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.trail.append(frame.url)

    @property
    def csp_problems(self) -> list[str]:
        reported = [json.dumps(v, sort_keys=True) for v in self.violations]
        logged = [line for line in self.console if "Content Security Policy" in line]
        return reported + logged

    def report(self) -> str:
        lines = ["pages: " + " -> ".join(_short(url) for url in self.trail)]
        if self.csp_problems:
            lines.append("CSP violations:\n  " + "\n  ".join(self.csp_problems))
        if self.errors:
            lines.append("page errors:\n  " + "\n  ".join(self.errors))
        if self.console:
            lines.append("console:\n  " + "\n  ".join(self.console))
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """No CSP violation and no uncaught error anywhere on the way."""
        assert not self.csp_problems and not self.errors, self.report()


def _short(url: str) -> str:
    return url if len(url) <= 160 else url[:157] + "..."


@pytest.fixture
def open_browser(browser: Any) -> Iterator[Callable[..., Watch]]:
    """open_browser(): a fresh, watched browser context (closed after the test)."""
    opened: list[Watch] = []

    def make() -> Watch:
        watch = Watch(browser.new_context())
        opened.append(watch)
        return watch

    yield make
    for watch in opened:
        watch.context.close()


# --- steps -------------------------------------------------------------------------------------------------


def _email(apps: Applications, kind: str) -> str:
    return f"round-trip.{apps.library}.{kind}.{secrets.token_hex(3)}@example.com"


def _api(page: Any, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(API_CALL, [method, path, body])
    return result


@contextmanager
def _front_end(provider: Server) -> Iterator[tuple[Browser, Any]]:
    """A first-party front end on the JSON API, over plain HTTP: how the returning people's accounts are
    made before their round trip (no browser step of the round trip happens here)."""
    with httpx.Client(timeout=30) as http:
        yield Browser(http), SimpleNamespace(base_url=provider.url)


def _returning_person(provider: Server, email: str) -> None:
    with _front_end(provider) as (person, site):
        created = person.signup(site, email)
        assert created.status_code == 201, created.text


def _sign_up_by_api(page: Any, provider: Server, email: str) -> None:
    """A new account, made through the JSON API from a page on Threshold (the page is signed in after)."""
    page.goto(f"{provider.url}/login")
    created = _api(page, "POST", "/api/v1/signup", {"email": email, "password": STRONG_PASSWORD})
    assert created["status"] == 201, created


def _open_app(page: Any, app: RelyingParty, shoot: Any) -> None:
    page.goto(f"{app.url}/")
    assert page.locator("#status").inner_text() == "Not signed in."


def _sign_in_from_app(page: Any, provider: Server, app: RelyingParty, shoot: Any) -> None:
    """The application's "Sign in" link, to Threshold's sign-in page (which continues the authorization)."""
    _open_app(page, app, shoot)
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login\?"))
    shoot(page, "threshold-sign-in")


def _password(page: Any, email: str) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _ask_for_a_sign_in_mail(page: Any, provider: Server, email: str) -> None:
    """From the sign-in page: "Email me a sign-in link", then the address; waits for the code field."""
    page.get_by_role("link", name="Email me a sign-in link").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login/email"))
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_label("6-digit code").wait_for()


def _stage(page: Any, provider: Server) -> str | None:
    """Which step of an authorization the tab shows, when it is one the person has to act on."""
    from playwright.sync_api import Error

    url = page.url
    if not url.startswith(provider.url + "/"):
        return None
    path = urlsplit(url).path
    try:
        if path == "/account/passkey-upgrade" and page.get_by_role("button", name="Not now").count():
            return "passkey-offer"
        if page.get_by_role("button", name="Allow", exact=True).count():
            return "consent"
        if path == "/oauth2/logout" and page.get_by_role("button", name="Sign out", exact=True).count():
            return "logout-confirm"
    except Error:  # the tab navigated while it was being read
        return None
    return None


TRANSIT_PATHS = ("/login", "/login/mfa", "/login/email", "/signup", "/oauth2/authorize", "/consent")


def _back_at_app(
    page: Any,
    watch: Watch,
    provider: Server,
    app: RelyingParty,
    shoot: Any,
    *,
    consent: Consent | None,
) -> list[str]:
    """Follow Threshold's pages back to the application; returns the steps the person acted on.

    Allow or Deny a consent page (a first-party client must not show one), "Not now" on the passkey offer,
    "Sign out" on a logout confirmation. Fails at once, with where the tab went and what the browser logged,
    when a CSP violation stops the way, or the tab rests on a page that is no step of an authorization
    (such as the account page), and after ROUND_TRIP_SECONDS in any case.
    """
    acted: list[str] = []
    deadline = time.monotonic() + ROUND_TRIP_SECONDS
    while not page.url.startswith(app.url + "/"):
        now = time.monotonic()
        stage = _stage(page, provider)
        if stage is not None and stage not in acted:
            acted.append(stage)
            shoot(page, stage)
            if stage == "consent":
                assert consent is not None, "a consent page for a first-party client\n" + watch.report()
                page.get_by_role("button", name="Allow" if consent == "allow" else "Deny", exact=True).click()
            elif stage == "passkey-offer":
                page.get_by_role("button", name="Not now").click()
            else:
                page.get_by_role("button", name="Sign out", exact=True).click()
            continue
        resting = urlsplit(page.url).path not in TRANSIT_PATHS and stage is None
        if watch.csp_problems or resting:
            deadline = min(deadline, now + STUCK_SECONDS)
        if now > deadline:
            shoot(page, "stopped")
            raise AssertionError(
                f"the browser did not get back to the {app.library} application ({app.url}); "
                f"it stopped at {_short(page.url)} after {acted or 'no'} step(s)\n{watch.report()}"
            )
        page.wait_for_timeout(100)
    page.wait_for_load_state()
    return acted


def _assert_signed_in(page: Any, watch: Watch, app: RelyingParty, email: str) -> None:
    status = page.locator("#status")
    if status.count() and status.inner_text() == f"Signed in as {email}":
        return
    raise AssertionError(
        f"the {app.library} application at {_short(page.url)} says: {page.locator('body').inner_text()!r}\n"
        f"{watch.report()}\napplication log:\n{app.log_tail()}"
    )


def _totp_code(secret: str, last_step: int) -> tuple[str, int]:
    """A code for the earliest step the server still accepts: after the last used one, within ±1 step."""
    step = max(int(time.time() // 30), last_step + 1)
    return pyotp.TOTP(secret).generate_otp(step), step


# --- a) a new person -------------------------------------------------------------------------------------


def test_new_person_signs_up_from_the_app_consents_and_lands_back(
    open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.third_party, _email(apps, "new")
    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)

    page.get_by_role("link", name="Create an account").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/signup"))
    shoot(page, "sign-up")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()

    acted = _back_at_app(page, watch, provider, app, shoot, consent="allow")
    assert "consent" in acted, acted
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


# --- b-e) a returning person, first-party client: no consent -------------------------------------------


def test_returning_person_signs_in_with_the_password(
    open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.first_party, _email(apps, "password")
    _returning_person(provider, email)

    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)
    _password(page, email)

    acted = _back_at_app(page, watch, provider, app, shoot, consent=None)
    assert "consent" not in acted
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


def test_returning_person_signs_in_with_a_second_factor(
    open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.first_party, _email(apps, "totp")
    with _front_end(provider) as (person, site):
        created = person.signup(site, email)
        assert created.status_code == 201, created.text
        enrolment = person.post(site, "/api/v1/mfa/totp/setup")
        assert enrolment.status_code == 200, enrolment.text
        secret = enrolment.json()["secret"]
        code, step = _totp_code(secret, 0)
        confirmed = person.post(site, "/api/v1/mfa/totp/confirm", {"code": code})
        assert confirmed.status_code == 200, confirmed.text

    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)
    _password(page, email)
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login/mfa\?"))
    shoot(page, "second-factor")
    code, step = _totp_code(secret, step)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Verify").first.click()

    _back_at_app(page, watch, provider, app, shoot, consent=None)
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


def test_returning_person_signs_in_with_a_passkey(
    browser: Any, open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.first_party, _email(apps, "passkey")
    # Enrolment on the account page, with a virtual authenticator; the passkey is then carried over to the
    # authenticator of a fresh browser (no cookie of either site): a person coming back on their device.
    setup = browser.new_context()
    setup_page = setup.new_page()
    enrolled_on = Authenticator(setup, setup_page)
    _sign_up_by_api(setup_page, provider, email)
    setup_page.goto(f"{provider.url}/account")
    setup_page.get_by_role("button", name="Add a passkey").click()
    setup_page.locator("#new-recovery-codes").wait_for(state="visible")
    [credential] = enrolled_on.credentials()
    setup.close()

    watch = open_browser()
    watch.context.add_init_script(RECORD_MEDIATION)
    page = watch.page
    cdp = watch.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {**AUTHENTICATOR, "automaticPresenceSimulation": False}  # autofill waits, the button decides
    authenticator = str(cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"])
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator, "credential": credential})

    _sign_in_from_app(page, provider, app, shoot)
    page.locator("#passkey-login").wait_for(state="visible")
    deadline = time.monotonic() + 3  # the page's autofill request, when it makes one, is pending first
    while "conditional" not in page.evaluate("sessionStorage.getItem('webauthn-get') || ''"):
        if time.monotonic() > deadline:
            break
        page.wait_for_timeout(50)
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": authenticator, "enabled": True})
    page.get_by_role("button", name="Sign in with a passkey").click()

    _back_at_app(page, watch, provider, app, shoot, consent=None)
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


def test_returning_person_signs_in_with_an_emailed_code(
    open_browser: Callable[[], Watch],
    provider: Server,
    smtp: SmtpSink,
    apps: Applications,
    shoot: Any,
) -> None:
    app, email = apps.first_party, _email(apps, "email")
    _returning_person(provider, email)

    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)
    _ask_for_a_sign_in_mail(page, provider, email)
    shoot(page, "check-mail")
    code = smtp.wait_for(email, "Your sign-in link").code()
    page.get_by_label("6-digit code").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()

    _back_at_app(page, watch, provider, app, shoot, consent=None)
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


def test_returning_person_signs_in_with_the_emailed_link_in_the_same_browser(
    open_browser: Callable[[], Watch],
    provider: Server,
    smtp: SmtpSink,
    apps: Applications,
    shoot: Any,
) -> None:
    """The link opened from the mailbox is a new navigation: the authorization comes back from the
    short-lived return cookie the request set in this browser."""
    app, email = apps.first_party, _email(apps, "link")
    _returning_person(provider, email)

    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)
    _ask_for_a_sign_in_mail(page, provider, email)
    link = smtp.wait_for(email, "Your sign-in link").link("/login/email/verify")
    page.goto(link)

    _back_at_app(page, watch, provider, app, shoot, consent=None)
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


def test_a_password_reset_started_from_the_app_returns_to_it(
    open_browser: Callable[[], Watch],
    provider: Server,
    smtp: SmtpSink,
    apps: Applications,
    shoot: Any,
) -> None:
    app, email = apps.first_party, _email(apps, "reset")
    _returning_person(provider, email)
    new_password = "copper meadow violin 2031 drift"

    watch = open_browser()
    page = watch.page
    _sign_in_from_app(page, provider, app, shoot)
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    page.get_by_role("status").wait_for()
    page.goto(smtp.wait_for(email, "Reset your password").link("/reset-password"))
    page.get_by_label("New password").fill(new_password)
    page.get_by_role("button", name="Set the new password").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login\?reset=1&next="))
    assert "Continue to" in page.locator("main").inner_text(), watch.report()
    shoot(page, "sign-in-after-reset")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(new_password)
    page.get_by_role("button", name="Sign in", exact=True).click()

    _back_at_app(page, watch, provider, app, shoot, consent=None)
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")
    watch.assert_clean()


# --- f) Deny ---------------------------------------------------------------------------------------------


def test_deny_on_the_consent_page_returns_access_denied(
    open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.third_party, _email(apps, "deny")
    watch = open_browser()
    page = watch.page
    _sign_up_by_api(page, provider, email)  # signed in at Threshold: the app's link goes to the consent page

    _open_app(page, app, shoot)
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/oauth2/authorize\?"))
    acted = _back_at_app(page, watch, provider, app, shoot, consent="deny")
    assert acted == ["consent"], acted
    error = page.locator("#error")
    assert error.count() and error.inner_text() == "access_denied", (
        f"{page.locator('body').inner_text()!r}\n{watch.report()}\n{app.log_tail()}"
    )
    assert urlsplit(page.url).path == "/callback"
    shoot(page, "app-access-denied")
    watch.assert_clean()


# --- g) RP-initiated logout ----------------------------------------------------------------------------


def test_logout_from_the_app_returns_to_the_app(
    open_browser: Callable[[], Watch], provider: Server, apps: Applications, shoot: Any
) -> None:
    app, email = apps.first_party, _email(apps, "logout")
    watch = open_browser()
    page = watch.page
    _sign_up_by_api(page, provider, email)  # signed in at Threshold: the app's link comes straight back

    _open_app(page, app, shoot)
    with page.expect_navigation(url=lambda url: url.startswith(app.url + "/")):
        page.get_by_role("link", name="Sign in").click()
    _assert_signed_in(page, watch, app, email)
    shoot(page, "app-signed-in")

    page.get_by_role("link", name="Sign out").click()
    # Back at the application's post_logout_redirect_uri (with its state), or at a Threshold page first.
    page.wait_for_url(lambda url: url.startswith(provider.url + "/") or "state=" in url)
    _back_at_app(page, watch, provider, app, shoot, consent=None)
    assert re.fullmatch(rf"{re.escape(app.url)}/\?state=[^&]+", page.url), page.url
    assert page.locator("#notice").inner_text() == "You are signed out.", watch.report()
    assert page.locator("#status").inner_text() == "Not signed in."
    shoot(page, "app-signed-out-again")

    # The session at Threshold ended too.
    response = page.goto(f"{provider.url}/api/v1/session")
    assert response is not None and response.status == 401, watch.report()
    watch.assert_clean()


# --- the application's language ----------------------------------------------------------------------------


def test_the_application_asks_for_arabic_and_every_page_and_the_mail_are_in_it(
    open_browser: Callable[[], Watch],
    provider: Server,
    smtp: SmtpSink,
    apps: Applications,
    shoot: Any,
) -> None:
    """`ui_locales=ar` on the application's authorization request, from a browser that asks for English:
    the sign-in page, the emailed-link form and its mail, and the consent page are in Arabic, right to
    left, all the way back to the application (OIDC Core 3.1.2.1)."""
    app, email = apps.third_party, _email(apps, "arabic")
    _returning_person(provider, email)
    arabic = Catalogues().get("ar")

    watch = open_browser()
    page = watch.page
    page.goto(f"{app.url}/login?ui_locales=ar")
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login\?"))
    seen = [_arabic_page(page, shoot, "sign-in")]

    page.locator('a[href^="/login/email"]').click()  # "Email me a sign-in link", in Arabic
    page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login/email"))
    seen.append(_arabic_page(page, shoot, "email-form"))
    page.locator("#email").fill(email)
    page.locator('form[action="/login/email"] button[type="submit"]').click()
    page.locator("#email-code").wait_for()
    seen.append(_arabic_page(page, shoot, "check-mail"))

    mail = smtp.wait_for(email, arabic.gettext("Your sign-in link"))  # the mail follows the page's language
    code = re.search(r"^[^\n:]+: (\d{6})\s*$", mail.text, re.MULTILINE)  # "Code:" is Arabic too
    assert code and code.group(1) in mail.html, mail.text
    page.locator("#email-code").fill(code.group(1))
    page.locator('form[action="/login/email/code"] button[type="submit"]').click()

    deadline = time.monotonic() + ROUND_TRIP_SECONDS
    while not page.url.startswith(app.url + "/"):
        assert time.monotonic() < deadline, f"stopped at {_short(page.url)}\n{watch.report()}"
        allow = page.locator('button[name="decision"][value="allow"]')  # the consent page, wherever it is
        dismiss = page.locator('form[action="/account/passkey-upgrade/dismiss"] button')
        if allow.count():
            seen.append(_arabic_page(page, shoot, "consent"))
            described = page.locator("ul.scopes span").all_inner_texts()
            assert described == [arabic.gettext(SCOPE_TEXT[s]) for s in ("openid", "email")], described
            assert not set(described) & set(SCOPE_TEXT.values()), described  # none left in English
            with page.expect_navigation():
                allow.click()
        elif dismiss.count():
            seen.append(_arabic_page(page, shoot, "passkey-offer"))
            with page.expect_navigation():
                dismiss.click()
        else:
            page.wait_for_timeout(100)
    page.wait_for_load_state()
    _assert_signed_in(page, watch, app, email)
    assert "consent" in seen, seen
    watch.assert_clean()


def _arabic_page(page: Any, shoot: Any, name: str) -> str:
    """Asserts the page is laid out in Arabic; returns `name`."""
    root = page.locator("html")
    assert (root.get_attribute("lang"), root.get_attribute("dir")) == ("ar", "rtl"), (name, page.url)
    assert page.locator("h1").first.inner_text() != "", name
    shoot(page, f"arabic-{name}")
    return name
