"""The hosted pages in each shipped language, walked in Chromium: a person whose browser speaks the
language signs up and lands on the account page in it (screenshot per language, in
test-artifacts/e2e/); dates read in the page's language and the browser's time zone; the language
picker; Arabic laid out right-to-left with axe-core finding no violation at all.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from scripts.translations import SHIPPED

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.test_console_browser import AXE
from tests.support import need
from threshold.i18n import Catalogues

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
ARABIC_PAGES = ["/login", "/signup", "/reset-password", "/login/email", "/nowhere"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        need("axe-core", f"{AXE} missing: npm ci --prefix tests/interop/node (make install does it)")
    return AXE.read_text()


def _words(code: str, text: str) -> str:
    return Catalogues().get(code).gettext(text)


def _sign_up(page: Any, server: Server) -> str:
    """Through the sign-up form, by its fields (their labels are in the page's language)."""
    email = f"lang.{secrets.token_hex(3)}@example.com"
    page.goto(f"{server.url}/signup")
    page.locator("#email").fill(email)
    page.locator("#password").fill(STRONG_PASSWORD)
    page.locator("form[action='/signup'] button[type=submit]").first.click()
    page.wait_for_url(f"{server.url}/account")
    return email


def _violations(page: Any, source: str) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)  # through the DevTools protocol: the page's CSP does not apply to it
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""",
        WCAG,
    )
    return found


@pytest.mark.parametrize("code", SHIPPED)
def test_the_account_page_in_each_language(browser: Any, server: Server, shoot: Any, code: str) -> None:
    context = browser.new_context(locale=code, timezone_id="Asia/Tokyo")
    page = context.new_page()
    try:
        _sign_up(page, server)
        html = page.locator("html")
        assert html.get_attribute("lang") == code
        assert html.get_attribute("dir") == ("rtl" if code == "ar" else "ltr")
        assert page.get_by_role("heading", level=1).first.inner_text().strip()
        assert page.get_by_role("button", name=_words(code, "Download your data")).count() == 1
        # the session's start, as the browser shows it: the page's language and Tokyo's time zone
        moment = page.locator("time[datetime]").first
        iso = moment.get_attribute("datetime")
        expected = page.evaluate(
            """(iso) => new Intl.DateTimeFormat(document.documentElement.lang, {day: "numeric",
                 month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"})
                 .format(new Date(iso))""",
            iso,
        )
        assert moment.inner_text() == expected
        assert not expected.endswith(" UTC") and moment.get_attribute("title") == iso  # not the server's UTC
        shoot(page, f"account-{code}")
    finally:
        context.close()


def test_arabic_reads_right_to_left_and_axe_finds_no_violation(
    browser: Any, server: Server, shoot: Any, axe_source: str
) -> None:
    context = browser.new_context(locale="ar")
    page = context.new_page()
    try:
        for path in ARABIC_PAGES:
            page.goto(f"{server.url}{path}")
            assert page.locator("html").get_attribute("dir") == "rtl"
            assert not (found := _violations(page, axe_source)), f"{path}: {found}"
        _sign_up(page, server)
        assert not (found := _violations(page, axe_source)), f"/account: {found}"
        # right to left for real: the heading starts at the card's right edge, not its left
        layout = page.evaluate(
            """() => {
                const card = document.querySelector('main').getBoundingClientRect();
                const heading = document.querySelector('main h1');
                const range = document.createRange();
                range.selectNodeContents(heading);
                const text = range.getBoundingClientRect();
                return {direction: getComputedStyle(heading).direction,
                        gapRight: card.right - text.right, gapLeft: text.left - card.left};
            }"""
        )
        assert layout["direction"] == "rtl"
        assert layout["gapRight"] < layout["gapLeft"], layout
        shoot(page, "account-ar-rtl")
    finally:
        context.close()


def test_the_language_picker(browser: Any, server: Server) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login")
        assert page.locator("html").get_attribute("lang") == "en"
        page.get_by_label("Language").select_option("de")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_url(f"{server.url}/login")
        assert page.locator("html").get_attribute("lang") == "de"
        assert page.get_by_role("link", name=_words("de", "Forgot your password?")).count() == 1
        page.goto(f"{server.url}/signup")  # the choice is remembered
        assert page.locator("html").get_attribute("lang") == "de"
        cookie = next(c for c in context.cookies() if c["name"] == "threshold_lang")
        assert cookie["value"] == "de" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    finally:
        context.close()
