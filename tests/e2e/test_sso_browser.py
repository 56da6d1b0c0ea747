"""Enterprise and social sign-in walked in Chromium, between two real `threshold serve` processes.

Threshold is itself an OpenID Provider, so the identity provider (IdP) of these tests is a second
Threshold: it serves http://localhost:<port>, the service (SP) serves http://127.0.0.1:<port>. Both name
their session cookie `__Host-threshold_session`, and cookies belong to a host whatever the port, so the
two must be different hosts for the browser to hold one session at each.

The SP's port is picked before anything starts: its issuer is then known, the IdP's clients are
registered with the one redirect URI `{sp}/sso/oidc/callback`, and the SP starts with a social connection
from Settings (`THRESHOLD_SSO__SOCIAL`) naming the second of those clients. The operator sets everything
up with the real CLI: the IdP's accounts and clients; the SP's organizations, their domains (verified
with `--trust`) and their OIDC connections to the IdP.

- acme.test (Acme): a connection; an address there goes to the IdP when no password is typed.
- globex.test (Globex): a connection with `--require-sso`; even the right password of a local account that
  existed before the connection, typed with the address, goes to the IdP and signs nothing in.
- "Continue with Partner IdP": the social connection, for a person without a local account.

Every page is watched for Content-Security-Policy violations (Chromium's console message), so that a
sign-in form whose redirect to the IdP the browser refuses fails with that reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import session_info
from tests.support import THRESHOLD, Deployment, free_port, make_deployment, spawn
from tests.support.threaded import ThreadedServer

pytestmark = pytest.mark.browser

SESSION_COOKIE = "__Host-threshold_session"
SOCIAL_NAME = "Partner IdP"
ALICE = "alice@acme.test"  # at the IdP (verified); no local account at the SP
BOB = "bob@globex.test"  # at the IdP (verified), and a local account at the SP made before any connection
SAM = "sam@partner.test"  # at the IdP (verified); no organization, no local account
MALLORY = "mallory@acme.test"  # at the IdP, an address it never verified
WRONG_PASSWORD = "not the password at all 77"
STEP_SECONDS = 15  # for one step of a walk (a redirect chain across both servers)

FORM_ACTION = (
    "The hosted /login page's CSP is `form-action 'self'`, and Chromium holds every hop of the redirect "
    "chain after a form submission to it: the way on to the IdP must not be a 303 chain from the form."
)

LOGIN_API = """async ([email, password]) => {
  const csrf = await (await fetch("/api/v1/csrf", {credentials: "same-origin"})).json();
  const response = await fetch("/api/v1/login", {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf.token},
    body: JSON.stringify({email, password}),
  });
  return {status: response.status, body: await response.json()};
}"""


class FormActionBlocked(AssertionError):
    """Chromium refused a form's redirect by the page's CSP `form-action` (see FORM_ACTION)."""


@dataclass(frozen=True)
class Sso:
    idp: Server
    sp: Server
    sp_deployment: Deployment
    bob_local_id: str


# --- the two servers, set up by the operator's CLI ------------------------------------------------------


def _json(result: Any) -> Any:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def _account(deployment: Deployment, email: str, *, verified: bool) -> dict[str, Any]:
    flags = ["--verified"] if verified else []
    created = _json(
        deployment.cli("users", "create", "--email", email, "--password-stdin", *flags, stdin=STRONG_PASSWORD)
    )
    assert isinstance(created, dict) and created["email_verified"] is verified, created
    return created


def _client(idp: Deployment, name: str, redirect_uri: str) -> dict[str, Any]:
    # The SP's connections ask for "openid email profile"; a Threshold client allows "openid email
    # offline_access" unless told otherwise.
    scopes = [arg for scope in ("openid", "email", "profile") for arg in ("--scope", scope)]
    created = _json(
        idp.cli(
            "clients",
            "create",
            "--name",
            name,
            "--redirect-uri",
            redirect_uri,
            *scopes,
            "--first-party",
            "--json",
        )
    )
    assert isinstance(created, dict) and created["client_id"] and created["client_secret"], created
    return created


def _organization(
    sp: Deployment,
    name: str,
    domain: str,
    client: Future[dict[str, Any]],
    idp: Future[Server],
    *extra: str,
    after: Future[Any] | None = None,
) -> None:
    """An organization with a domain the operator vouches for, then (`after` is done) its OIDC connection
    to the IdP."""
    slug = _json(sp.cli("orgs", "create", "--name", name, "--slug", name.lower(), "--json"))["slug"]
    assert _json(sp.cli("orgs", "domains", "add", slug, domain, "--json"))["verified"] is False
    assert _json(sp.cli("orgs", "domains", "verify", slug, domain, "--trust", "--json"))["verified"] is True
    secret = client.result()
    if after is not None:
        after.result()
    connection = _json(
        sp.cli(
            "orgs",
            "connections",
            "add",
            slug,
            "--type",
            "oidc",
            "--issuer",
            idp.result().url,
            # `=`: a generated id or secret may begin with "-", which argparse would take for an option
            f"--client-id={secret['client_id']}",
            f"--client-secret={secret['client_secret']}",
            *extra,
            "--json",
        )
    )
    assert connection["type"] == "oidc", connection
    assert connection["redirect_uri"] == f"{sp.env['THRESHOLD_ISSUER']}/sso/oidc/callback", connection
    assert connection["require_sso"] is ("--require-sso" in extra), connection


def _start_on(deployment: Deployment, port: int, **settings: str) -> Server:
    """`threshold serve` on a port picked beforehand, answering as http://127.0.0.1:<port> (tests.support
    picks the port as it starts, and the IdP's clients had to know the SP's redirect URI first)."""
    url = f"http://127.0.0.1:{port}"
    env = {**deployment.env, **settings, "THRESHOLD_ISSUER": url}
    argv = [THRESHOLD, "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
    child = spawn(argv, log=deployment.dir / f"server-{port}.log", env=env)
    server = Server(process=child.process, log=child.log, port=port, url=url, env=env)
    deployment.servers.append(server)  # stopped with the deployment, ready or not
    server.wait_until_ready(server.base_url + "/readyz", what="service (SP)")
    return server


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    root: Path = tmp_path_factory.mktemp("sso-e2e")
    sp_url = f"http://127.0.0.1:{free_port()}"
    callback = f"{sp_url}/sso/oidc/callback"
    for name in ("idp", "sp"):
        (root / name).mkdir()
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=4) as pool:
        # Both migrated side by side; each is stopped and removed by the stack, whichever came up.
        deployments = [
            pool.submit(
                stack.enter_context, make_deployment(root / "idp", "sqlite", THRESHOLD_LOG_LEVEL="info")
            ),
            pool.submit(
                stack.enter_context,
                make_deployment(root / "sp", "sqlite", THRESHOLD_LOG_LEVEL="info", THRESHOLD_ISSUER=sp_url),
            ),
        ]
        idp_dep, sp_dep = (future.result() for future in deployments)
        # Independent CLI commands run side by side (each is a Python start-up; SQLite waits on locks).
        idp: Future[Server] = pool.submit(idp_dep.start, issuer=lambda port: f"http://localhost:{port}")
        enterprise = pool.submit(_client, idp_dep, "Service (organizations)", callback)
        social = pool.submit(_client, idp_dep, "Service (social)", callback)
        bob_local = pool.submit(_account, sp_dep, BOB, verified=True)  # before Globex's connection exists
        orgs = [
            pool.submit(_organization, sp_dep, "Acme", "acme.test", enterprise, idp),
            pool.submit(
                _organization,
                sp_dep,
                "Globex",
                "globex.test",
                enterprise,
                idp,
                "--require-sso",
                after=bob_local,
            ),
        ]
        people = [pool.submit(_account, idp_dep, email, verified=True) for email in (ALICE, BOB, SAM)]
        people.append(pool.submit(_account, idp_dep, MALLORY, verified=False))
        partner = {
            "id": "partner",
            "name": SOCIAL_NAME,
            "issuer": idp.result().url,
            "client_id": social.result()["client_id"],
            "client_secret": social.result()["client_secret"],
        }
        sp = _start_on(sp_dep, int(sp_url.rpartition(":")[2]), THRESHOLD_SSO__SOCIAL=json.dumps([partner]))
        pending: list[Future[Any]] = [*people, *orgs]
        for future in pending:
            future.result()
        yield Sso(idp=idp.result(), sp=sp, sp_deployment=sp_dep, bob_local_id=str(bob_local.result()["id"]))


# --- steps of a walk -----------------------------------------------------------------------------------


def _new_page(browser: Any) -> Any:
    """A page in a fresh context (no cookies), whose CSP violations are collected in `page.csp`."""
    page = browser.new_context().new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.csp = violations
    return page


def _arrive(page: Any, pattern: str, what: str) -> None:
    """Wait for the tab to reach a URL matching `pattern`; else fail saying where it stopped and why, at
    once when the browser refused a form's redirect (that tab goes nowhere)."""
    target = re.compile(pattern)
    deadline = time.monotonic() + STEP_SECONDS
    while not target.search(page.url):
        blocked = any("form-action" in line for line in page.csp)
        if blocked or time.monotonic() > deadline:
            shown = page.locator("body").inner_text()[:500] if page.locator("body").count() else ""
            report = f"not at {what}: the tab stopped at {page.url}\n{shown}\nCSP: {page.csp}"
            raise (FormActionBlocked if blocked else AssertionError)(report)
        page.wait_for_timeout(100)
    page.wait_for_load_state()


def _at_idp_sign_in(page: Any, sso: Sso, email: str) -> None:
    """The tab is on the IdP's own sign-in page (another host), the address carried over."""
    _arrive(page, rf"^{re.escape(sso.idp.url)}/login\?", "the IdP's sign-in page")
    assert page.get_by_label("Email address").input_value() == email  # the login_hint
    assert not _has_session(page, sso.sp)


def _sign_in_at_idp(page: Any, sso: Sso, email: str) -> None:
    """Email and password on the IdP's page; past the IdP's passkey offer to its own user, if shown."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _arrive(page, rf"^(?!{re.escape(sso.idp.url)}/login)", "a page after the IdP's sign-in")
    if page.url.startswith(f"{sso.idp.url}/account/passkey-upgrade"):
        page.get_by_role("button", name="Not now").click()


def _signed_in_at_sp(page: Any, sso: Sso, email: str) -> dict[str, Any]:
    """Back at the SP, past its own passkey offer, on its account page; returns GET /api/v1/session."""
    sp = sso.sp.url
    _arrive(page, rf"^{re.escape(sp)}/account(/passkey-upgrade\?.*)?$", "the SP's account page")
    if "/account/passkey-upgrade" in page.url:
        page.get_by_role("button", name="Not now").click()
        _arrive(page, rf"^{re.escape(sp)}/account$", "the SP's account page")
    assert email in page.content()
    session = session_info(page)
    assert session["status"] == 200, session
    assert session["body"]["user"]["email"] == email, session
    assert not page.csp, page.csp
    return session


def _has_session(page: Any, server: Server) -> bool:
    return any(c["name"] == SESSION_COOKIE for c in page.context.cookies(server.url))


def _role(sso: Sso, org: str, email: str) -> str | None:
    members = _json(sso.sp_deployment.cli("orgs", "members", "list", org, "--json"))
    return next((str(m["role"]) for m in members if m["email"] == email), None)


# --- the sign-in page routes to the IdP ----------------------------------------------------------------


def test_email_first_on_the_sign_in_page_goes_to_the_idp_and_back_signed_in(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    page = _new_page(browser)
    page.goto(f"{sso.sp.url}/login")
    shoot(page, "01-sp-sign-in")
    page.get_by_label("Email address").fill(ALICE)
    page.get_by_label("Email address").press("Enter")  # email first: the password left empty
    try:
        _at_idp_sign_in(page, sso, ALICE)
    finally:
        shoot(page, "02-idp-sign-in")
    _sign_in_at_idp(page, sso, ALICE)
    first = _signed_in_at_sp(page, sso, ALICE)
    shoot(page, "03-sp-signed-in")

    # Signed out at the SP only, "Sign in with single sign-on": the IdP still knows the person, so the
    # trip is straight back, to the same account.
    page.context.clear_cookies(domain="127.0.0.1")
    page.goto(f"{sso.sp.url}/login")
    page.get_by_label("Email address").fill(ALICE)
    page.locator("#sso-login").click()
    again = _signed_in_at_sp(page, sso, ALICE)
    assert again["body"]["user"]["id"] == first["body"]["user"]["id"]
    page.context.close()


def test_home_realm_discovery_round_trip_provisions_a_member_of_the_organization(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    """The same trip as the sign-in page's, started at the discovery URL (what the JSON API's
    `redirect` and the hosted page's 303 point to): the IdP round trip itself works."""
    page = _new_page(browser)
    page.goto(f"{sso.sp.url}/sso/start?email={ALICE}&next=/account")
    _at_idp_sign_in(page, sso, ALICE)
    shoot(page, "01-idp-sign-in")
    _sign_in_at_idp(page, sso, ALICE)
    session = _signed_in_at_sp(page, sso, ALICE)
    shoot(page, "02-sp-signed-in")
    assert session["body"]["user"]["email_verified"] is True  # the IdP is authoritative for acme.test
    assert _has_session(page, sso.idp) and _has_session(page, sso.sp)  # one session at each host
    assert _role(sso, "acme", ALICE) == "member"  # the connection's default role
    page.context.close()


def test_a_link_from_another_site_asks_the_person_before_going_to_the_idp(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    """A page of another site (here on host localhost, as the IdP is: another site than the SP's
    127.0.0.1) links to the SP's /sso/start. Chromium says the request is cross-site, so the SP asks the
    person first (no site signs them in, or swaps their session, through an IdP of its choosing); their
    click on "Continue to sign in" is the SP's own link, and the trip goes on as usual."""
    start = f"{sso.sp.url}/sso/start?email={ALICE}&next=/account"

    async def portal_page(_: Request) -> Response:
        return HTMLResponse(f'<!doctype html><title>Portal</title><a id="go" href="{start}">Sign in</a>')

    portal = ThreadedServer(Starlette(routes=[Route("/", portal_page)])).start()
    page = _new_page(browser)
    try:
        page.goto(f"http://localhost:{portal.port}/")
        page.locator("#go").click()
        _arrive(page, rf"^{re.escape(sso.sp.url)}/sso/start\?", "the SP's confirmation page")
        page.locator("#sso-confirm").wait_for()
        shoot(page, "01-sp-asks-first")
        assert not page.url.startswith(sso.idp.url) and not _has_session(page, sso.sp)
        page.locator("#sso-confirm").click()
        _at_idp_sign_in(page, sso, ALICE)
        _sign_in_at_idp(page, sso, ALICE)
        _signed_in_at_sp(page, sso, ALICE)
        shoot(page, "02-sp-signed-in")
    finally:
        page.context.close()
        portal.stop()


# --- --require-sso ---------------------------------------------------------------------------------------


def test_require_sso_sends_a_typed_password_to_the_idp(browser: Any, sso: Sso, shoot: Any) -> None:
    page = _new_page(browser)
    page.goto(f"{sso.sp.url}/login")
    page.get_by_label("Email address").fill(BOB)
    page.get_by_label("Password").fill(STRONG_PASSWORD)  # the right password of the local account
    shoot(page, "01-sp-password-typed")
    page.get_by_role("button", name="Sign in", exact=True).click()
    try:
        _at_idp_sign_in(page, sso, BOB)
    finally:
        shoot(page, "02-idp-sign-in")
    _sign_in_at_idp(page, sso, BOB)
    session = _signed_in_at_sp(page, sso, BOB)
    shoot(page, "03-sp-signed-in")
    assert session["body"]["user"]["id"] == sso.bob_local_id
    page.context.close()


def test_require_sso_never_signs_in_with_the_password_and_links_the_existing_account(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    page = _new_page(browser)
    for password in (STRONG_PASSWORD, WRONG_PASSWORD):  # the right one of the local account, and not
        page.goto(f"{sso.sp.url}/login")
        page.get_by_label("Email address").fill(BOB)
        page.get_by_label("Password").fill(password)
        with (
            page.expect_request(
                lambda r: r.url.startswith(f"{sso.sp.url}/sso/start?email=bob%40globex.test")
            ),
            page.expect_response(
                lambda r: r.request.method == "POST" and r.url == f"{sso.sp.url}/login"
            ) as sent,
        ):
            page.get_by_role("button", name="Sign in", exact=True).click()
        answer = sent.value
        assert answer.status == 200  # a page that moves on to the IdP (a 303 would meet form-action)
        assert SESSION_COOKIE not in (answer.headers.get("set-cookie") or "")
        # Where that page moves on to, reached before the next step (a navigation still under way
        # would interrupt the next page.goto).
        _arrive(page, rf"^{re.escape(sso.idp.url)}/login\?", "the IdP's sign-in page")
        assert not _has_session(page, sso.sp)
    shoot(page, "01-sp-after-password")
    page.csp.clear()  # where the tab went from there is the previous test's

    # Nor does the JSON API: the same answer for either password, and no session.
    page.goto(f"{sso.sp.url}/login")
    answers = [page.evaluate(LOGIN_API, [BOB, p]) for p in (STRONG_PASSWORD, WRONG_PASSWORD)]
    for answer in answers:
        assert answer == {"status": 200, "body": answers[0]["body"]}, answers
        assert answer["body"]["status"] == "sso_required", answer
    assert not _has_session(page, sso.sp)
    assert session_info(page)["status"] == 401

    # Where the API sends the person: the IdP, then back signed in to the account that existed before
    # (Globex verified globex.test, so its IdP may link it).
    page.goto(answers[0]["body"]["redirect"])
    _at_idp_sign_in(page, sso, BOB)
    shoot(page, "02-idp-sign-in")
    _sign_in_at_idp(page, sso, BOB)
    session = _signed_in_at_sp(page, sso, BOB)
    shoot(page, "03-sp-signed-in")
    assert session["body"]["user"]["id"] == sso.bob_local_id
    assert _role(sso, "globex", BOB) == "member"
    page.context.close()


# --- social connection from Settings ---------------------------------------------------------------------


def test_a_social_connection_signs_in_a_person_without_a_local_account(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    page = _new_page(browser)
    page.goto(f"{sso.sp.url}/login")
    link = page.get_by_role("link", name=f"Continue with {SOCIAL_NAME}")
    assert link.get_attribute("href") == "/sso/start?connection=social-partner&next=/account"
    shoot(page, "01-sp-sign-in")
    link.click()
    _arrive(page, rf"^{re.escape(sso.idp.url)}/login\?", "the IdP's sign-in page")
    assert not _has_session(page, sso.sp)
    shoot(page, "02-idp-sign-in")
    _sign_in_at_idp(page, sso, SAM)
    session = _signed_in_at_sp(page, sso, SAM)
    shoot(page, "03-sp-signed-in")
    assert session["body"]["user"]["email_verified"] is True  # the IdP said it verified the address
    page.context.close()


# --- a refused answer ------------------------------------------------------------------------------------


def test_an_address_the_idp_never_verified_is_refused_with_a_clear_page_and_no_session(
    browser: Any, sso: Sso, shoot: Any
) -> None:
    page = _new_page(browser)
    page.goto(f"{sso.sp.url}/sso/start?email={MALLORY}")
    _at_idp_sign_in(page, sso, MALLORY)
    shoot(page, "01-idp-sign-in")
    callback: Callable[[Any], bool] = lambda r: r.url.startswith(f"{sso.sp.url}/sso/oidc/callback?")  # noqa: E731
    with page.expect_response(callback, timeout=STEP_SECONDS * 1000) as answered:
        _sign_in_at_idp(page, sso, MALLORY)
    page.wait_for_load_state()
    shoot(page, "02-sp-refused")
    assert 400 <= answered.value.status < 500, answered.value.status  # a refusal, not a 500
    assert page.url.startswith(f"{sso.sp.url}/sso/oidc/callback?")
    shown = page.locator("body").inner_text()
    assert "The identity provider says this address is not verified." in shown, shown
    assert "email_unverified" in shown, shown
    assert not _has_session(page, sso.sp)
    assert session_info(page)["status"] == 401
    users = _json(sso.sp_deployment.cli("users", "list", "--json"))
    assert MALLORY not in [u["email"] for u in users]  # nor was an account made
    page.context.close()
