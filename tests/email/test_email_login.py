"""Sign-in by email: one message with a link and a 6-digit code, both single use and short-lived, bound
to the browser that asked; the same answer for every address; rate limits; MFA still applies."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import SESSION_COOKIE, assert_problem, form_value, set_cookie
from tests.conftest import ISSUER, csrf, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import Received, token_of
from tests.mfa.helpers import enrol_totp, new_account, send_code, totp_code

BINDING = "__Host-threshold_email_login"
SIGN_IN = "Your sign-in link"
BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}


async def _ask(browser: httpx.AsyncClient, email: str) -> httpx.Response:
    if "X-CSRF-Token" not in browser.headers:
        await csrf(browser)
    return await browser.post("/api/v1/login/email", json={"email": email})


async def _asked(mail: MailApp, email: str, browser: httpx.AsyncClient | None = None) -> Received:
    """`browser` asks for a sign-in message for `email`; returns the message."""
    response = await _ask(browser or mail.client, email)
    assert response.status_code == 202, response.text
    return await mail.last(email, SIGN_IN)


async def _verify(browser: httpx.AsyncClient, **body: Any) -> httpx.Response:
    if "X-CSRF-Token" not in browser.headers:
        await csrf(browser)
    return await browser.post("/api/v1/login/email/verify", json=body)


def _signed_in_by_email(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    session = response.json()["session"]
    assert session["aal"] == "aal1" and session["amr"] == ["email"], session
    assert set_cookie(response, SESSION_COOKIE)["value"]
    cleared = set_cookie(response, BINDING)  # the binding is spent
    assert cleared["value"] == "" or cleared.get("max-age") == "0", cleared


async def _account(mail: MailApp, prefix: str) -> str:
    email = unique_email(prefix)
    assert (await signup(mail.browser(), email)).status_code == 201
    await mail.deliver()
    return email


async def test_the_request_answers_alike_for_known_and_unknown_addresses(
    mail_factory: Callable[..., Any],
) -> None:
    mail: MailApp = await mail_factory(email={"per_address": 20})
    known, unknown = await _account(mail, "known"), unique_email("unknown")
    timings: dict[str, list[float]] = {known: [], unknown: []}
    shapes: dict[str, set[Any]] = {known: set(), unknown: set()}
    bindings: set[str] = set()
    for address in (known, unknown):  # warm-up
        await _ask(mail.browser(), address)
    await mail.deliver()
    for round_ in range(7):
        for address in (known, unknown) if round_ % 2 else (unknown, known):
            browser = mail.browser()
            await csrf(browser)
            started = time.perf_counter()
            response = await _ask(browser, address)
            timings[address].append(time.perf_counter() - started)
            cookie = set_cookie(response, BINDING)
            bindings.add(cookie.pop("value"))
            names = sorted(h.split("=", 1)[0] for h in response.headers.get_list("set-cookie"))
            shapes[address].add(
                (response.status_code, response.content, tuple(sorted(cookie.items())), *names)
            )
            await mail.deliver()
    assert shapes[known] == shapes[unknown]
    ((status, body, attributes, *_),) = shapes[known]
    assert (status, body) == (202, b'{"status":"email_sent"}')
    assert dict(attributes) == {
        "max-age": "600",
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "lax",
    }
    assert len(bindings) == 14  # a new binding for every request
    ratio = statistics.median(timings[known]) / statistics.median(timings[unknown])
    assert 0.5 <= ratio <= 2.0, (ratio, timings)
    assert len(mail.smtp.to(known, SIGN_IN)) == 8
    assert mail.smtp.to(unknown) == []


async def test_one_message_carries_a_link_and_a_code(mail: MailApp) -> None:
    email = await _account(mail, "message")
    message = await _asked(mail, email)
    assert len(await mail.inbox(email, SIGN_IN)) == 1
    link = message.link("/login/email/verify")
    assert link.startswith(f"{ISSUER}/login/email/verify?token=") and len(token_of(link)) >= 43
    code = message.code()
    assert code.isdigit() and len(code) == 6
    assert "10 minutes" in message.text


async def test_the_code_works_only_in_the_browser_that_asked_and_once(mail: MailApp) -> None:
    email = await _account(mail, "code")
    asker = mail.browser()
    code = (await _asked(mail, email, asker)).code()

    elsewhere = mail.browser()
    assert_problem(await _verify(elsewhere, code=code), 400, "invalid_request")  # no binding at all
    assert (await _ask(elsewhere, unique_email("nobody"))).status_code == 202  # a binding of its own
    # (the answer to a wrong code, whether or not the address it asked for has an account)
    assert_problem(await _verify(elsewhere, code=code), 400, "invalid_code")
    assert (await elsewhere.get("/api/v1/session")).status_code == 401

    binding = asker.cookies[BINDING]
    _signed_in_by_email(await _verify(asker, code=f" {code[:3]} {code[3:]} "))  # as typed
    me = (await asker.get("/api/v1/session")).json()
    assert me["user"]["email"] == email and me["session"]["amr"] == ["email"]

    replay = mail.browser()
    replay.cookies.set(BINDING, binding, domain="auth.threshold.test", path="/")
    assert_problem(await _verify(replay, code=code), 400, "invalid_code")  # spent: like a wrong code
    assert (await replay.get("/api/v1/session")).status_code == 401


async def test_wrong_codes_are_exhausted_after_the_allowed_attempts(mail: MailApp) -> None:
    email = await _account(mail, "guess")
    asker = mail.browser()
    code = (await _asked(mail, email, asker)).code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    attempts = mail.settings.email.code_attempts
    assert attempts == 5
    for _ in range(attempts - 1):
        assert_problem(await _verify(asker, code=wrong), 400, "invalid_code")
    assert_problem(await _verify(asker, code=wrong), 400, "token_invalid")
    assert_problem(await _verify(asker, code=code), 400, "token_invalid")  # the right one, too late
    assert (await asker.get("/api/v1/session")).status_code == 401


async def test_concurrent_guesses_share_the_allowed_attempts(
    mail: MailApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty guesses at once get no more comparisons than five in a row (no check-then-count race)."""
    from threshold.core.email import flows

    compared: list[str] = []
    real_equal = flows.equal  # type: ignore[attr-defined]

    def counting_equal(a: str, b: str) -> bool:
        compared.append(a)
        return real_equal(a, b)

    monkeypatch.setattr(flows, "equal", counting_equal)
    email = await _account(mail, "race")
    asker = mail.browser()
    code = (await _asked(mail, email, asker)).code()
    await csrf(asker)
    guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]
    answers = await asyncio.gather(*(_verify(asker, code=guess) for guess in guesses))
    assert all(a.status_code == 400 for a in answers)
    assert sorted(a.json()["code"] for a in answers) == ["invalid_code"] * 4 + ["token_invalid"] * 16
    assert len(compared) == mail.settings.email.code_attempts
    assert_problem(await _verify(asker, code=code), 400, "token_invalid")


async def test_the_link_signs_in_the_browser_that_asked(mail: MailApp) -> None:
    email = await _account(mail, "link")
    asker = mail.browser()
    token = token_of((await _asked(mail, email, asker)).link("/login/email/verify"))
    _signed_in_by_email(await _verify(asker, token=token))
    assert_problem(await _verify(mail.browser(), token=token, confirm=True), 400, "token_invalid")


async def test_the_link_elsewhere_asks_for_confirmation_then_signs_in_once(mail: MailApp) -> None:
    email = await _account(mail, "confirm")
    message = await _asked(mail, email)
    token = token_of(message.link("/login/email/verify"))
    phone = mail.browser()
    assert_problem(await _verify(phone, token=token), 409, "confirmation_required")
    assert (await phone.get("/api/v1/session")).status_code == 401
    _signed_in_by_email(await _verify(phone, token=token, confirm=True))
    assert_problem(await _verify(mail.browser(), token=token, confirm=True), 400, "token_invalid")
    # the same sign-in: its code is spent too (answered like any wrong code)
    assert_problem(await _verify(mail.client, code=message.code()), 400, "invalid_code")
    assert (await mail.client.get("/api/v1/session")).status_code == 401


async def test_the_hosted_link_page_signs_in_here_or_asks_first(mail: MailApp) -> None:
    email = await _account(mail, "pages")
    asker = mail.browser()
    link = (await _asked(mail, email, asker)).link("/login/email/verify")
    opened = await asker.get(link)
    assert opened.status_code == 303 and opened.headers["location"].startswith(
        ("/account", "/account/passkey")
    )
    assert (await asker.get("/api/v1/session")).json()["session"]["amr"] == ["email"]

    link = (await _asked(mail, email)).link("/login/email/verify")
    scanner = mail.browser()
    for _ in range(2):  # a mail scanner fetching the link signs nobody in and consumes nothing
        page = await scanner.get(link)
        assert page.status_code == 200 and "requested from another browser" in page.text
        assert (await scanner.get("/api/v1/session")).status_code == 401
    confirmed = await scanner.post(
        "/login/email/verify",
        data={"csrf_token": form_value(page.text, "csrf_token"), "token": token_of(link)},
        headers=BROWSER_POST,
    )
    assert confirmed.status_code == 303, confirmed.text
    assert (await scanner.get("/api/v1/session")).json()["user"]["email"] == email


async def test_links_and_codes_expire(mail: MailApp) -> None:
    email = await _account(mail, "expiry")
    lifetime = mail.settings.email.login_lifetime
    assert lifetime == 600
    asker = mail.browser()
    code = (await _asked(mail, email, asker)).code()
    await mail.let_time_pass(lifetime - 1)
    _signed_in_by_email(await _verify(asker, code=code))

    late = mail.browser()
    message = await _asked(mail, email, late)
    await mail.let_time_pass(lifetime + 1)
    assert_problem(await _verify(late, code=message.code()), 400, "invalid_code")  # like a wrong one
    assert_problem(
        await _verify(late, token=token_of(message.link("/login/email/verify"))), 400, "token_invalid"
    )
    assert (await late.get("/api/v1/session")).status_code == 401


async def test_email_is_never_the_second_factor(mail: MailApp) -> None:
    """An emailed link is no authenticator (SP 800-63B-4): email + TOTP is one factor, so `aal1` with
    `amr` ["email", "otp"] and `acr` "aal1" (issue 11, hole 9: this was `aal2`)."""
    account = await new_account(mail.browser(), "mfa")
    await enrol_totp(account, mail.clock)
    assert account.totp_secret
    asker = mail.browser()
    token = token_of((await _asked(mail, account.email, asker)).link("/login/email/verify"))
    pending = await _verify(asker, token=token)
    assert pending.status_code == 200 and pending.json() == {
        "status": "mfa_required",
        "methods": ["totp", "recovery_code"],
    }
    assert not any(h.startswith(SESSION_COOKIE) for h in pending.headers.get_list("set-cookie"))
    assert (await asker.get("/api/v1/session")).status_code == 401

    await mail.let_time_pass(30)
    done = await send_code(asker, "totp", totp_code(account.totp_secret, mail.clock))
    assert done.status_code == 200, done.text
    assert done.json()["session"]["aal"] == "aal1"
    assert set(done.json()["session"]["amr"]) == {"email", "otp"}


async def test_requests_are_rate_limited_per_address_and_per_client_address(
    mail_factory: Callable[..., Any],
) -> None:
    mail: MailApp = await mail_factory(email={"per_address": 3, "per_ip": 8})
    known, unknown = await _account(mail, "limited"), unique_email("limited")
    for address in (known, unknown):
        for _ in range(3):
            assert (await _ask(mail.browser(ip="198.51.100.1"), address)).status_code == 202
        refused = [await _ask(mail.browser(ip="198.51.100.2"), address) for _ in range(2)]
        for response in refused:
            assert_problem(response, 429, "rate_limited")
            assert int(response.headers["retry-after"]) > 0
    assert len(await mail.inbox(known, SIGN_IN)) == 3

    # One client address, many mailboxes: 8 per hour.
    for _ in range(2):
        assert (await _ask(mail.browser(ip="198.51.100.1"), unique_email("spray"))).status_code == 202
    assert_problem(await _ask(mail.browser(ip="198.51.100.1"), unique_email("spray")), 429, "rate_limited")
    assert (await _ask(mail.browser(ip="198.51.100.3"), unique_email("spray"))).status_code == 202

    # An hour later, the address may ask again.
    await mail.let_time_pass(3601)
    assert (await _ask(mail.browser(ip="198.51.100.4"), known)).status_code == 202


async def test_one_ipv6_host_cannot_rotate_through_its_slash_64(mail_factory: Callable[..., Any]) -> None:
    """The per-client limit keys an IPv6 client on its /64 like the sign-in limits do (review of issue
    11: it keyed the full address, so a host of one /64 could ask for mail without end)."""
    mail: MailApp = await mail_factory(email={"per_address": 100, "per_ip": 4})
    for host in range(4):
        browser = mail.browser(ip=f"2001:db8:7:7::{host + 1:x}")
        assert (await _ask(browser, unique_email("v6"))).status_code == 202
    assert_problem(await _ask(mail.browser(ip="2001:db8:7:7::99"), unique_email("v6")), 429, "rate_limited")
    assert (await _ask(mail.browser(ip="2001:db8:7:8::1"), unique_email("v6"))).status_code == 202


async def test_the_operator_can_switch_email_sign_in_off(mail_factory: Callable[..., Any]) -> None:
    mail: MailApp = await mail_factory(email={"login_enabled": False})
    email = await _account(mail, "off")
    assert_problem(await _ask(mail.client, email), 403, "email_login_disabled")
    assert_problem(await _verify(mail.client, code="123456"), 403, "email_login_disabled")
    assert (await mail.client.get("/login/email")).status_code == 404
    assert "Email me a sign-in link" not in (await mail.client.get("/login")).text
    assert await mail.deliver() == 0


def _wrong(code: str, step: int = 1) -> str:
    return f"{(int(code) + step) % 1_000_000:06d}"


async def test_a_wrong_code_answers_alike_for_known_and_unknown_addresses(mail: MailApp) -> None:
    """Whoever asked for a code for an address learns nothing from a wrong code: the same status and
    body, try after try, until the same try exhausts both, and similar time (issue 11, hole 7)."""
    known = await _account(mail, "enum-known")
    attempts = mail.settings.email.code_attempts
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for round_ in range(4):
        asker = {"known": mail.browser(), "unknown": mail.browser()}
        real = (await _asked(mail, known, asker["known"])).code()
        assert (await _ask(asker["unknown"], unique_email("enum-nobody"))).status_code == 202
        await mail.deliver()
        for try_ in range(attempts + 1):
            answers: dict[str, httpx.Response] = {}
            for who in ("known", "unknown") if try_ % 2 else ("unknown", "known"):
                started = time.perf_counter()
                answers[who] = await _verify(asker[who], code=_wrong(real, try_ + 1))
                if round_:  # the first round warms up
                    timings[who].append(time.perf_counter() - started)
            assert (answers["known"].status_code, answers["known"].content) == (
                answers["unknown"].status_code,
                answers["unknown"].content,
            ), (try_, answers["known"].text, answers["unknown"].text)
            expected = "invalid_code" if try_ < attempts - 1 else "token_invalid"
            assert_problem(answers["known"], 400, expected)
        assert_problem(await _verify(asker["known"], code=real), 400, "token_invalid")  # spent
    ratio = statistics.median(timings["known"]) / statistics.median(timings["unknown"])
    assert 0.5 <= ratio <= 2.0, (ratio, timings)


def _alerts(page: str) -> list[str]:
    return re.findall(r'<p class="alert"[^>]*>(.*?)</p>', page)


def _page_text(response: httpx.Response) -> str:
    """The page without what differs on every render (CSRF token, CSP nonce) or names the address."""
    text = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', response.text)
    text = re.sub(r'name="csrf-token" content="[^"]*"', 'name="csrf-token" content=""', text)
    return re.sub(r'nonce="[^"]*"', 'nonce=""', text)


async def test_the_hosted_code_page_answers_alike_for_known_and_unknown_addresses(mail: MailApp) -> None:
    known = await _account(mail, "enum-page")
    attempts = mail.settings.email.code_attempts
    pages: dict[str, list[tuple[int, str]]] = {"known": [], "unknown": []}
    real = ""
    for who, address in (("known", known), ("unknown", unique_email("enum-page-nobody"))):
        browser = mail.browser()
        form = await browser.get("/login/email")
        asked = await browser.post(
            "/login/email",
            data={"csrf_token": form_value(form.text, "csrf_token"), "email": address},
            headers=BROWSER_POST,
        )
        assert asked.status_code == 200 and "6-digit code" in asked.text, asked.text
        if who == "known":
            real = (await mail.last(known, SIGN_IN)).code()
        page = asked
        for try_ in range(attempts + 1):
            page = await browser.post(
                "/login/email/code",
                data={"csrf_token": form_value(page.text, "csrf_token"), "code": _wrong(real, try_ + 1)},
                headers=BROWSER_POST,
            )
            pages[who].append((page.status_code, _page_text(page)))
    for try_, (known_page, unknown_page) in enumerate(zip(pages["known"], pages["unknown"], strict=True)):
        assert known_page == unknown_page, (try_, *_alerts(known_page[1]), *_alerts(unknown_page[1]))
    assert [status for status, _ in pages["known"]] == [400] * (attempts + 1)
