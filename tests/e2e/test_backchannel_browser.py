"""Signing out at Threshold signs the person out of an application on another origin, as they walk it.

A person signs in to an application (Authlib's Starlette client, tests/e2e/rp/authlib_app.py, on
127.0.0.1, registered with `--backchannel-logout-uri`) through Threshold (on localhost) in Chromium. Then,
in the same browser, they open Threshold's account page and sign out there: the account page's "Sign
out" link, the confirmation page, its button. The application was never visited meanwhile; it hears of
it through the logout token Threshold posts to its back-channel endpoint, and the person's next look at
the application shows them signed out.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import localhost_server
from tests.e2e.walks import new_person, register_web_client, sign_in_with_password
from tests.support import free_port, spawn

ROOT = Path(__file__).resolve().parents[2]
SIGNED_OUT_WITHIN = 5.0
"""Seconds from the confirmation to the application's page saying so (the delivery itself takes ms)."""


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with localhost_server(
        tmp_path_factory.mktemp("backchannel-browser"), THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="1000"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def app_url(provider: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = register_web_client(
        provider.env, "Example app (Authlib)", url, callback="/callback", backchannel="/backchannel-logout"
    )
    env = {
        **os.environ,
        "RP_ISSUER": provider.url,
        "RP_CLIENT_ID": client["client_id"],
        "RP_CLIENT_SECRET": client["client_secret"],
        "RP_BASE_URL": url,
    }
    log = tmp_path_factory.mktemp("rp") / "authlib.log"
    process = spawn(
        [
            sys.executable,
            *("-m", "uvicorn", "--factory", "tests.e2e.rp.authlib_app:from_environment"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "info"),
        ],
        log=log,
        env=env,
        cwd=ROOT,
    )
    try:
        process.wait_until_ready(f"{url}/", timeout=60, what="the Authlib application")
        yield url
    finally:
        process.stop(timeout=10)


def test_signing_out_at_threshold_signs_the_person_out_of_the_application(
    browser: Any, provider: Server, app_url: str, shoot: Any
) -> None:
    email = new_person(provider.env, "backchannel")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{app_url}/")
        page.get_by_role("link", name="Sign in").click()
        page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login\?"))
        sign_in_with_password(page, email, STRONG_PASSWORD, back_to=app_url)
        assert page.locator("#status").inner_text() == f"Signed in as {email}"
        shoot(page, "app-signed-in")

        page.goto(f"{provider.url}/account")
        page.get_by_role("link", name="Sign out").first.click()
        page.wait_for_url(f"{provider.url}/logout")
        shoot(page, "threshold-sign-out")
        page.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login"))
        confirmed = time.monotonic()

        while True:
            page.goto(f"{app_url}/")
            if page.locator("#status").inner_text() == "Not signed in.":
                break
            assert time.monotonic() - confirmed < SIGNED_OUT_WITHIN, "the application still signs them in"
            page.wait_for_timeout(100)
        shoot(page, "app-signed-out")
    finally:
        context.close()
