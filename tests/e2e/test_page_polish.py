"""Presentation a newcomer trips on: timestamps, the unconfirmed-address notice, button spacing, the favicon.

The pages are opened at http://localhost:<port>, so the passkey offer shows both of its buttons (WebAuthn
refuses IP-address origins, and on one the page hides its passkey button).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import localhost_server

ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PHONE = {"width": 390, "height": 844}

# Every <time> on the page: its attributes, text, box, and the line height of its text.
TIMES = """() => [...document.querySelectorAll("time")].map((el) => {
    const box = el.getBoundingClientRect();
    return {
        datetime: el.getAttribute("datetime"),
        title: el.getAttribute("title"),
        text: el.textContent,
        height: box.height,
        lines: el.getClientRects().length,
        lineHeight: parseFloat(getComputedStyle(el).lineHeight),
    };
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with localhost_server(tmp_path_factory.mktemp("polish-e2e")) as server:
        yield server


def _sign_up(page: Any, site: Server) -> str:
    email = f"polish.{secrets.token_hex(3)}@example.com"
    page.goto(f"{site.url}/signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{site.url}/account")
    return email


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} has no box"
    return dict(box)


def _assert_times_readable(page: Any, *, at_least: int) -> list[dict[str, Any]]:
    times: list[dict[str, Any]] = page.evaluate(TIMES)
    assert len(times) >= at_least, times
    for time in times:
        assert time["datetime"] and ISO_INSTANT.match(time["datetime"]), time
        assert time["title"] == time["datetime"], time
        assert time["text"] != time["datetime"], time  # a readable time, not the raw ISO value
        assert time["lines"] == 1 and time["height"] < 1.5 * time["lineHeight"], time
    return times


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE], ids=["desktop", "phone"])
def test_account_page_times_and_unconfirmed_notice(
    browser: Any, site: Server, shoot: Any, viewport: dict[str, int]
) -> None:
    context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Europe/Berlin")
    page = context.new_page()
    _sign_up(page, site)
    shoot(page, "account")

    # sessions (signed in, last active) and the sign-up event at least
    times = _assert_times_readable(page, at_least=3)
    assert all(re.search(r"\b20\d\d\b", t["text"]) for t in times), times

    # The unconfirmed-address notice is a block of its own with a button sized to its label,
    # and the next card starts clearly below that button.
    notice = page.locator("#email-unconfirmed")
    assert "not confirmed" in notice.inner_text()
    assert notice.evaluate("el => el.classList.contains('card')")
    button = notice.get_by_role("button", name="Send the link again")
    notice_box, button_box = _box(notice), _box(button)
    assert notice_box["x"] <= button_box["x"] and notice_box["y"] <= button_box["y"]
    assert button_box["x"] + button_box["width"] <= notice_box["x"] + notice_box["width"]
    assert button_box["y"] + button_box["height"] <= notice_box["y"] + notice_box["height"]
    assert button_box["width"] < notice_box["width"] * 0.75
    next_card = page.locator("#email-unconfirmed ~ .card").first
    assert _box(next_card)["y"] - (button_box["y"] + button_box["height"]) >= 16
    assert _box(next_card)["y"] - (notice_box["y"] + notice_box["height"]) >= 8
    context.close()


def test_times_without_javascript_read_in_utc(browser: Any, site: Server, shoot: Any) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    _sign_up(page, site)
    shoot(page, "account-nojs")
    times = _assert_times_readable(page, at_least=3)
    for time in times:
        assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC", time["text"]), time
    context.close()


def test_passkey_offer_buttons_do_not_touch(browser: Any, site: Server, shoot: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_up(page, site)
    page.goto(f"{site.url}/account/passkey-upgrade?next=%2Faccount")
    add = page.get_by_role("button", name="Add a passkey")
    later = page.get_by_role("button", name="Not now")
    add.wait_for()
    shoot(page, "passkey-offer")
    first, second = sorted((_box(add), _box(later)), key=lambda box: box["y"])
    vertical_gap = second["y"] - (first["y"] + first["height"])
    horizontal_gap = max(
        second["x"] - (first["x"] + first["width"]), first["x"] - (second["x"] + second["width"])
    )
    assert max(vertical_gap, horizontal_gap) >= 8, (first, second)
    context.close()


def test_favicon(browser: Any, site: Server, shoot: Any) -> None:
    answer = httpx.get(f"{site.url}/favicon.ico")
    assert answer.status_code in (200, 301, 308), answer
    icon = httpx.get(f"{site.url}/favicon.ico", follow_redirects=True)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/")

    context = browser.new_context()
    page = context.new_page()
    failed: list[str] = []
    console: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("console", lambda message: console.append(f"{message.type}: {message.text} {message.location}"))
    for path in ("/login", "/signup"):
        page.goto(f"{site.url}{path}")
        href = page.locator("link[rel=icon]").get_attribute("href")
        assert href
        linked = page.evaluate("async (href) => (await fetch(href)).status", href)
        assert linked == 200
    _sign_up(page, site)
    page.wait_for_load_state("networkidle")
    shoot(page, "account-with-favicon")
    assert not [url for url in failed if "favicon" in url], failed
    assert not [m for m in console if "404" in m or "favicon" in m], console
    context.close()
