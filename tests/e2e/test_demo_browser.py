"""`make demo` walked in Chromium: each architecture's application, as the demo prints it.

The demo (`python -m demo`, what `make demo` runs) is started as a newcomer would start it, on a free
range of ports; the test reads the URLs and accounts it wrote to its ready file and walks every path:

1. the server-rendered shop sends a stranger to Threshold's sign-in and shows the signed-in person;
2. the SPA signs in through its BFF, loads orders from the API, and signs out (of Threshold too);
3. the service calls the API with a client_credentials token, which the API accepts (and refuses none);
4. nginx serves the handbook only to a signed-in browser (auth_request to forward-auth);
5. the desktop-style app signs in through a loopback redirect on a port the OS picked;
6. an Acme address signs in through Acme's own identity provider.

And one revocation reaches them: signing out at Threshold sends the shop and the handbook back to the
sign-in page.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.walks import decline_passkey_offers_until, sign_in_with_password
from tests.support import clean_env, need

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DEMO_PORTS = 12  # B .. B+11


def _free_base() -> int:
    """A base port with the demo's whole range free (picked from the kernel's ephemeral-free range)."""
    for base in range(20000, 30000, 37):
        ok = True
        for port in range(base, base + DEMO_PORTS):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise AssertionError("no free range of ports for the demo")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        need("nginx", "Debian's nginx is not installed (apt-get install nginx)")
    directory = tmp_path_factory.mktemp("demo")
    ready, log = directory / "ready.json", directory / "demo.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo", "--base-port", str(_free_base()), "--ready-file", str(ready)],
            cwd=ROOT,
            env=clean_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the demo did not get ready:\n" + log.read_text()
            time.sleep(0.2)
        time.sleep(0.1)  # the file is written in one call; let it land
        yield json.loads(ready.read_text())
    finally:
        process.terminate()  # the demo stops every process it started, and removes its directory
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    printed = log.read_text()
    assert process.returncode == 0, printed  # stopped cleanly, every process with it
    assert "Ctrl-C stops everything." in printed and "Traceback" not in printed, printed


def _sign_in_page(issuer: str, back_to: str) -> re.Pattern[str]:
    """Threshold's sign-in page, asked to come back to /{back_to}/ afterwards."""
    return re.compile(rf"^{re.escape(issuer)}/login\?next=(/|%2F){back_to}(/|%2F)$")


def _text(page: Any, selector: str, starts: str) -> str:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s) && document.querySelector(s).textContent.startsWith(t)",
        arg=[selector, starts],
        timeout=20_000,
    )
    return str(page.locator(selector).inner_text())


def test_every_architecture_of_the_demo_works_in_a_browser(
    browser: Any, demo: dict[str, Any], shoot: Any
) -> None:
    urls, issuer = demo["urls"], demo["issuer"]
    email, password = demo["user"]["email"], demo["user"]["password"]
    context = browser.new_context()
    page = context.new_page()
    try:
        # 1. the shop: a stranger goes to Threshold's sign-in, and comes back signed in
        page.goto(urls["shop"])
        page.wait_for_url(_sign_in_page(issuer, "shop"))
        sign_in_with_password(page, email, password, back_to=urls["shop"])
        assert _text(page, "#who", "Signed in") == f"Signed in as {email}"
        as_json = page.evaluate("fetch('/shop/api/orders').then(r => r.json())")
        assert as_json["email"] == email and as_json["orders"]
        shoot(page, "1-shop")

        # 4. the handbook, the same browser: nginx asked Threshold, and let it through
        page.goto(urls["handbook"])
        assert _text(page, "#who", "Signed in") == f"Signed in as {email}"
        shoot(page, "4-handbook")

        # 3. the service and the API
        page.goto(urls["service"])
        assert _text(page, "#answer", "API") == "API answered 200"
        assert _text(page, "#without", "Without") == "Without a token the API answers 401."
        shoot(page, "3-service")

        # 5. the desktop app: the browser (signed in at Threshold) comes back on the app's loopback port
        page.goto(urls["native"])
        page.get_by_role("link", name="Sign in with the browser").click()
        page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?"))
        assert "Signed in: close this tab" in page.content()
        page.get_by_role("link", name="back to the app").click()
        assert _text(page, "#who", "Signed in") == f"Signed in as {email}"
        assert "rotated yes" in page.content()
        shoot(page, "5-desktop-app")

        # 2. the SPA through its BFF (already signed in at Threshold: straight back)
        page.goto(urls["spa"])
        page.get_by_role("link", name="Sign in").click()
        page.wait_for_url(urls["spa"])
        assert _text(page, "#status", "Signed in") == f"Signed in as {email}"
        page.get_by_role("button", name="Load orders").click()
        subject = page.evaluate("fetch('/bff/user', {headers: {'X-CSRF': '1'}}).then(r => r.json())")["sub"]
        assert _text(page, "#orders", "orders of").startswith(f"orders of {subject} (token ")
        shoot(page, "2-spa")
        page.get_by_role("button", name="Sign out").click()  # the SPA's sign-out ends Threshold's too
        page.wait_for_url(re.compile(rf"^{re.escape(urls['spa'])}\??$"))
        assert _text(page, "#status", "Not signed in") == "Not signed in."
        page.goto(urls["shop"])  # and so the shop asks again
        page.wait_for_url(_sign_in_page(issuer, "shop"))
        sign_in_with_password(page, email, password, back_to=urls["shop"])

        # one revocation reaches the others: signed out at Threshold, the shop and the handbook ask again
        page.goto(f"{issuer}/logout")
        page.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_url(re.compile(rf"^{re.escape(issuer)}/login"))
        page.goto(urls["shop"])
        page.wait_for_url(_sign_in_page(issuer, "shop"))
        page.goto(urls["handbook"])
        page.wait_for_url(_sign_in_page(issuer, "handbook"))
        # and the handbook's way back after signing in again
        sign_in_with_password(page, email, password, back_to=urls["handbook"])
        assert _text(page, "#who", "Signed in") == f"Signed in as {email}"
    finally:
        context.close()


def test_an_acme_address_signs_in_through_acmes_identity_provider(
    browser: Any, demo: dict[str, Any], shoot: Any
) -> None:
    """6. Email first on Threshold's page: the address's organization has an OIDC connection."""
    issuer, idp, alice = demo["issuer"], demo["idp"], demo["idp_user"]
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(demo["urls"]["sso"])
        page.get_by_label("Email address").fill(alice["email"])
        page.get_by_label("Email address").press("Enter")
        page.wait_for_url(re.compile(rf"^{re.escape(idp)}/login\?"))
        shoot(page, "6-acme-idp")
        sign_in_with_password(page, alice["email"], alice["password"], back_to=issuer)
        decline_passkey_offers_until(page, f"{issuer}/account")
        session = page.evaluate("fetch('/api/v1/session').then(r => r.json())")
        assert session["user"]["email"] == alice["email"], session
        shoot(page, "6-signed-in")
    finally:
        context.close()
