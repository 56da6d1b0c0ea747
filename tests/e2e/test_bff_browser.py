"""An SPA behind `threshold-bff`, as a person walks it in Chromium.

Threshold answers on http://localhost:<port>; the SPA (demo/spa, plain HTML and JS, served by the
BFF with --static) and its BFF on http://127.0.0.1:<port>, another site; the SPA's API, which trusts
Threshold's access tokens through TokenVerifier, on a third origin. The client's access tokens live 30
seconds, inside the BFF's refresh window: every API call the SPA makes is served after a refresh with
rotation, and the API sees a new token each time.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import localhost_server
from tests.e2e.walks import (
    decline_passkey_offers_until,
    new_person,
    register_web_client,
    sign_in_with_password,
    sign_up_from_sign_in_page,
)
from tests.support import clean_env, free_port, spawn
from tests.support.threaded import ThreadedServer
from threshold.client import TokenVerifier

SPA = Path(__file__).resolve().parents[2] / "demo" / "spa"  # the demo's SPA, walked here on its own
SIGNED_OUT_WITHIN = 5.0


@dataclass
class Spa:
    url: str
    provider: Server
    elsewhere: str
    """A page on another site (localhost, where the BFF is on 127.0.0.1) with no CSP of its own."""


def api(issuer: str) -> Starlette:
    verifier = TokenVerifier(issuer=issuer, audience=issuer)

    async def orders(request: Request) -> JSONResponse:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        verified = await verifier.averify(token)
        return JSONResponse({"sub": verified.subject, "jti": verified.claims.get("jti")})

    async def elsewhere(request: Request) -> JSONResponse:
        return JSONResponse({"page": "another site"})

    return Starlette(routes=[Route("/orders", orders), Route("/elsewhere", elsewhere)])


@pytest.fixture(scope="module")
def spa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spa]:
    directory = tmp_path_factory.mktemp("bff-browser")
    with localhost_server(directory, THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="1000") as provider:
        upstream = ThreadedServer(api(provider.url)).start()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        client = register_web_client(
            provider.env,
            "Example SPA",
            url,
            callback="/bff/callback",
            backchannel="/bff/backchannel",
            extra=("--access-token-lifetime", "30"),
        )
        process = spawn(
            [
                str(Path(sys.executable).with_name("threshold-bff")),
                *("--issuer", provider.url, "--client-id", client["client_id"]),
                *("--upstream", upstream.url, "--static", str(SPA), "--port", str(port)),
            ],
            log=directory / "bff.log",
            env=clean_env(THRESHOLD_BFF_CLIENT_SECRET=client["client_secret"]),
        )
        try:
            process.wait_until_ready(f"{url}/", timeout=30, what="threshold-bff")
            yield Spa(url=url, provider=provider, elsewhere=f"http://localhost:{upstream.port}/elsewhere")
        finally:
            process.stop(timeout=10)
            upstream.stop()


def _sign_in(page: Any, spa: Spa, email: str) -> None:
    page.goto(f"{spa.url}/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login\?"))
    sign_in_with_password(page, email, STRONG_PASSWORD, back_to=spa.url)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Signed in')")
    assert page.locator("#status").inner_text() == f"Signed in as {email}"


def _load_orders(page: Any) -> str:
    page.locator("#orders").evaluate("e => e.textContent = ''")
    page.get_by_role("button", name="Load orders").click()
    page.wait_for_function("document.getElementById('orders').textContent !== ''")
    return str(page.locator("#orders").inner_text())


def test_an_spa_signs_in_calls_its_api_and_signs_out_through_the_bff(
    browser: Any, spa: Spa, shoot: Any
) -> None:
    email = new_person(spa.provider.env, "spa")
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, spa, email)
        cookies = context.cookies(spa.url)
        assert [c["name"] for c in cookies] == ["__Host-threshold-bff"]
        assert cookies[0]["httpOnly"] and cookies[0]["secure"] and cookies[0]["sameSite"] == "Lax"
        storage = page.evaluate("JSON.stringify([localStorage, sessionStorage, document.cookie])")
        assert "eyJ" not in storage and storage == '[{},{},""]'  # the page holds no token, sees no cookie

        first, second = _load_orders(page), _load_orders(page)
        assert first.startswith("orders of ") and second.startswith("orders of ")
        assert first != second  # each call refreshed (30-second tokens): a new token, no reuse
        shoot(page, "spa-orders")

        # refusals, from the page itself: no X-CSRF header
        status = page.evaluate("fetch('/api/orders').then(r => r.status)")
        assert status == 403
        # and from another site: the cross-site POST carries no usable cookie and no header
        other = context.new_page()
        other.goto(spa.elsewhere)
        other.evaluate(
            "u => fetch(u + '/bff/logout', {method: 'POST', mode: 'no-cors', credentials: 'include'})",
            spa.url,
        )
        other.close()
        assert _load_orders(page).startswith("orders of ")  # still signed in

        # through Threshold's end-session endpoint (the ID token hint names the session: no question)
        # and back to the post-logout redirect URI
        with page.expect_request(re.compile(rf"^{re.escape(spa.provider.url)}/")):
            page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(rf"^{re.escape(spa.url)}/\??$"))
        page.wait_for_function("document.getElementById('status').textContent === 'Not signed in.'")
        assert context.cookies(spa.url) == []
        shoot(page, "spa-signed-out")
        page.goto(f"{spa.provider.url}/account")  # signed out at Threshold too
        page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login"))
    finally:
        context.close()


def test_signing_out_at_threshold_ends_the_bff_session(browser: Any, spa: Spa, shoot: Any) -> None:
    email = new_person(spa.provider.env, "spa")
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, spa, email)
        page.goto(f"{spa.provider.url}/account")
        page.get_by_role("link", name="Sign out").first.click()
        page.wait_for_url(f"{spa.provider.url}/logout")
        page.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login"))
        confirmed = time.monotonic()
        while True:
            page.goto(f"{spa.url}/")
            page.wait_for_function("document.getElementById('status').textContent !== 'Loading…'")
            if page.locator("#status").inner_text() == "Not signed in.":
                break
            assert time.monotonic() - confirmed < SIGNED_OUT_WITHIN, "the BFF still signs them in"
            page.wait_for_timeout(100)
        shoot(page, "spa-signed-out-by-threshold")
    finally:
        context.close()


def test_signing_up_during_the_bff_sign_in_comes_back_to_the_spa(browser: Any, spa: Spa, shoot: Any) -> None:
    """A newcomer has no account yet: "Create an account" on Threshold's page, then straight back."""
    email = f"newcomer.{os.getpid()}.{time.monotonic_ns()}@example.com"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{spa.url}/")
        page.get_by_role("link", name="Sign in").click()
        page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login\?"))
        sign_up_from_sign_in_page(page, email, STRONG_PASSWORD)
        decline_passkey_offers_until(page, spa.url)
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Signed in')")
        assert page.locator("#status").inner_text() == f"Signed in as {email}"
        assert _load_orders(page).startswith("orders of ")
        shoot(page, "spa-after-sign-up")
    finally:
        context.close()


def test_the_bff_callback_errors_are_pages_a_person_can_act_on(browser: Any, spa: Spa, shoot: Any) -> None:
    """A callback this browser did not start, a sign-in the person cancelled, and a replayed callback: a
    page that says so and offers a new start, never an error trace; and the new start works."""
    email = new_person(spa.provider.env, "spa-errors")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{spa.url}/bff/callback?code=forged&state=forged")  # not started in this browser
        assert page.get_by_role("heading").inner_text() == "Sign-in could not finish"
        shoot(page, "bff-callback-not-started")

        page.goto(f"{spa.url}/bff/login?returnTo=/")  # at Threshold's sign-in page, the person cancels
        page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login\?"))
        state = parse_qs(urlsplit(parse_qs(urlsplit(page.url).query)["next"][0]).query)["state"][0]
        page.goto(f"{spa.url}/bff/callback?error=access_denied&state={state}")
        assert page.get_by_role("heading").inner_text() == "Not signed in"
        assert "Sign-in was cancelled." in page.content()
        shoot(page, "bff-callback-cancelled")
        page.get_by_role("link", name="Sign in again").click()  # the way out: a new sign-in
        page.wait_for_url(re.compile(rf"^{re.escape(spa.provider.url)}/login\?"))
        sign_in_with_password(page, email, STRONG_PASSWORD, back_to=spa.url)
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Signed in')")

        with page.expect_response(re.compile(r"/bff/callback\?")) as finished:
            page.goto(f"{spa.url}/bff/login?returnTo=/")  # signed in at Threshold: straight back
            page.wait_for_url(re.compile(rf"^{re.escape(spa.url)}/$"))
        # the same callback again (history, a bookmark): this browser no longer holds that sign-in's
        # cookie, so the page says it was not started here (the single use of a state whose cookie is
        # still held is tested over HTTP: test_bff.py)
        replayed = page.goto(finished.value.url)
        assert replayed is not None and replayed.status == 400
        assert page.get_by_role("heading").inner_text() == "Sign-in could not finish"
        assert "not started in this browser" in page.content()
        shoot(page, "bff-callback-replayed")
        page.goto(f"{spa.url}/")  # still signed in: the replay changed nothing
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Signed in')")
    finally:
        context.close()
