"""The account page's "Download your data", walked in Chromium: a download at once after signing in;
later, the step-up page first, then the download."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.support import make_deployment

WINDOW = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose step-up window is short enough to outlast in a test."""
    with make_deployment(
        tmp_path_factory.mktemp("e2e-data"),
        "sqlite",
        THRESHOLD_LOG_LEVEL="info",
        THRESHOLD_MFA__REAUTHENTICATION_WINDOW=str(WINDOW),
    ) as deployment:
        yield deployment.start()


def _download(page: Any, click: Any) -> dict[str, Any]:
    with page.expect_download() as started:
        click()
    download = started.value
    assert download.suggested_filename == "threshold-account-data.json"
    document: dict[str, Any] = json.loads(Path(download.path()).read_text())
    return document


def test_download_your_data_from_the_account_page(browser: Any, server: Server, shoot: Any) -> None:
    email = f"data.{secrets.token_hex(3)}@example.com"
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")
    button = page.get_by_role("button", name="Download your data")
    button.scroll_into_view_if_needed()
    shoot(page, "01-account")

    document = _download(page, button.click)
    assert document["profile"]["email"] == email
    assert [s["current"] for s in document["sessions"]] == [True]
    assert STRONG_PASSWORD not in json.dumps(document)

    page.wait_for_timeout((WINDOW + 1) * 1000)  # the sign-in is no longer recent
    page.get_by_role("button", name="Download your data").click()
    page.wait_for_url(f"{server.url}/reauthenticate?next=%2Faccount%23your-data")
    shoot(page, "02-confirm-it-is-you")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Confirm", exact=True).click()
    page.wait_for_url(f"{server.url}/account#your-data")
    document = _download(page, page.get_by_role("button", name="Download your data").click)
    kinds = [event["kind"] for event in document["audit_events"]]
    assert kinds.count("account_exported") == 1 and "reauthenticated" in kinds
    context.close()


def test_delete_the_account_then_sign_in_and_keep_it(browser: Any, server: Server, shoot: Any) -> None:
    email = f"leaving.{secrets.token_hex(3)}@example.com"
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/account")

    page.get_by_role("button", name="Delete my account").click()  # the box is not ticked: refused
    assert page.url == f"{server.url}/account"
    page.get_by_label("Yes, delete my account").check()
    shoot(page, "01-delete")
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(f"{server.url}/login?deleted=1")
    assert "Your account will be deleted" in page.get_by_role("status").inner_text()
    shoot(page, "02-signed-out")
    assert not [c for c in context.cookies() if c["name"] == "__Host-threshold_session"]

    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{server.url}/login/restore?*")
    assert page.get_by_role("heading", name="Keep your account?").is_visible()
    assert page.locator("time").count() == 1  # the erasure date, from the server
    shoot(page, "03-keep")
    page.get_by_role("button", name="Keep my account").click()
    page.wait_for_url(
        f"{server.url}/account/passkey-upgrade?next=%2Faccount"
    )  # signed in, as after any sign-in
    page.get_by_role("button", name="Not now").click()
    page.wait_for_url(f"{server.url}/account")
    assert email in page.content()
    shoot(page, "04-kept")
    context.close()
