"""Password reset by email: the same answer for every address, single-use 20-minute links, and a reset
that ends every session and refresh token, notifies the owner and never bypasses the second factor."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import assert_problem, form_value
from tests.conftest import ISSUER, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of
from tests.mfa.helpers import enrol_totp, new_account, pending_login, send_code, totp_code

NEW_PASSWORD = "copper meadow violin 2031 drift"
RESET = "Reset your password"
CHANGED = "Your password was changed"


async def _request_reset(client: httpx.AsyncClient, email: str) -> httpx.Response:
    if "X-CSRF-Token" not in client.headers:
        await csrf(client)
    return await client.post("/api/v1/password/reset/request", json={"email": email})


async def _reset_token(mail: MailApp, email: str) -> str:
    assert (await _request_reset(mail.browser(), email)).status_code == 202
    return token_of((await mail.last(email, RESET)).link("/reset-password"))


async def _reset(client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    if "X-CSRF-Token" not in client.headers:
        await csrf(client)
    return await client.post("/api/v1/password/reset", json={"token": token, "new_password": password})


async def test_reset_request_answers_alike_for_known_and_unknown_addresses(
    mail_factory: Callable[..., Any],
) -> None:
    mail: MailApp = await mail_factory(email={"per_address": 20})
    known, unknown = unique_email("known"), unique_email("unknown")
    assert (await signup(mail.client, known)).status_code == 201
    await mail.deliver()
    asker = mail.browser()
    await csrf(asker)
    timings: dict[str, list[float]] = {known: [], unknown: []}
    answers: dict[str, set[tuple[int, bytes, str]]] = {known: set(), unknown: set()}
    for address in (known, unknown):  # warm-up: first-use costs (a new counter row...) are not timed
        await _request_reset(asker, address)
    await mail.deliver()
    for round_ in range(7):
        for address in (known, unknown) if round_ % 2 else (unknown, known):
            started = time.perf_counter()
            response = await _request_reset(asker, address)
            timings[address].append(time.perf_counter() - started)
            answers[address].add((response.status_code, response.content, response.headers["content-type"]))
            await mail.deliver()  # background work finishes outside the timed window
    assert answers[known] == answers[unknown] == {(202, b'{"status":"reset_requested"}', "application/json")}
    ratio = statistics.median(timings[known]) / statistics.median(timings[unknown])
    assert 0.5 <= ratio <= 2.0, (ratio, timings)
    assert len(mail.smtp.to(known, RESET)) == 8
    assert mail.smtp.to(unknown) == []


async def test_a_reset_link_works_once_and_only_the_newest(mail: MailApp) -> None:
    email = unique_email("once")
    assert (await signup(mail.client, email)).status_code == 201
    older = await _reset_token(mail, email)
    token = await _reset_token(mail, email)
    reader = mail.browser()

    # The link opens a form; the page does not consume it.
    page = await reader.get(f"{ISSUER}/reset-password?token={token}")
    assert page.status_code == 200 and form_value(page.text, "token") == token
    assert_problem(await _reset(reader, older), 400, "token_invalid")  # superseded

    done = await _reset(reader, token)
    assert done.status_code == 200 and done.json() == {"status": "password_reset"}
    assert_problem(await _reset(reader, token, "another fine passphrase 88"), 400, "token_invalid")
    assert "invalid, expired or was already used" in (await reader.get(f"/reset-password?token={token}")).text
    assert_problem(await login(mail.browser(), email), 401, "invalid_credentials")
    assert (await login(mail.browser(), email, NEW_PASSWORD)).status_code == 200
    # Using the emailed link proved the mailbox.
    signed_in = await login(mail.browser(), email, NEW_PASSWORD)
    assert signed_in.json()["user"]["email_verified"] is True


async def test_a_reset_link_expires_after_twenty_minutes(mail: MailApp) -> None:
    email = unique_email("expiry")
    assert (await signup(mail.client, email)).status_code == 201
    assert mail.settings.email.reset_lifetime == 1200
    token = await _reset_token(mail, email)
    await mail.let_time_pass(1199)
    assert 'name="new_password"' in (await mail.browser().get(f"/reset-password?token={token}")).text
    await mail.let_time_pass(2)
    assert 'name="new_password"' not in (await mail.browser().get(f"/reset-password?token={token}")).text
    assert_problem(await _reset(mail.browser(), token), 400, "token_invalid")
    assert (await login(mail.browser(), email)).status_code == 200  # the password did not change


async def test_a_reset_ends_every_session_and_refresh_token_and_notifies(mail: MailApp) -> None:
    email = unique_email("revoke")
    assert (await signup(mail.client, email)).status_code == 201
    laptop = mail.browser()
    assert (await login(laptop, email)).status_code == 200
    op = await mail.oidc()
    rp = await op.register()
    tokens = await op.tokens(rp, mail.client)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200  # the family is live
    fresh = (await op.refresh(rp, tokens.refresh)).json()  # within grace: the same successor
    await mail.deliver()
    before = len(mail.smtp.to(email))

    assert (await _reset(mail.browser(), await _reset_token(mail, email))).status_code == 200
    for browser in (mail.client, laptop):
        assert_problem(await browser.get("/api/v1/session"), 401, "not_authenticated")
    refused = await op.refresh(rp, fresh.get("refresh_token", tokens.refresh))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text

    received = await mail.inbox(email)
    subjects = [m.subject for m in received[before:]]
    assert subjects[0].startswith(RESET) and subjects[1].startswith(CHANGED), subjects
    notice = received[before + 1]
    assert "203.0.113.7" in notice.text and notice.link("/account") == f"{ISSUER}/account"


async def test_a_reset_never_bypasses_the_second_factor(mail: MailApp) -> None:
    account = await new_account(mail.client, "mfa")
    await enrol_totp(account, mail.clock)
    assert account.totp_secret
    assert (await _reset(mail.browser(), await _reset_token(mail, account.email))).status_code == 200
    assert (await account.client.get("/api/v1/session")).status_code == 401

    browser = mail.browser()
    assert await pending_login(browser, account.email, NEW_PASSWORD) == ["totp", "recovery_code"]
    await mail.let_time_pass(30)
    done = await send_code(browser, "totp", totp_code(account.totp_secret, mail.clock))
    assert done.status_code == 200 and done.json()["session"]["aal"] == "aal2", done.text


async def test_a_weak_new_password_is_refused_and_the_link_stays_usable(mail: MailApp) -> None:
    email = unique_email("weak")
    assert (await signup(mail.client, email)).status_code == 201
    token = await _reset_token(mail, email)
    browser = mail.browser()
    for weak in ("short", email, "a" * 20):
        refused = await _reset(browser, token, weak)
        assert refused.status_code == 422 and refused.json()["code"].startswith("password_"), refused.text
    assert (await mail.client.get("/api/v1/session")).status_code == 200  # nothing was ended
    assert (await _reset(browser, token)).status_code == 200
    assert (await login(mail.browser(), email, NEW_PASSWORD)).status_code == 200


async def test_two_resets_with_one_link_at_once_only_one_wins(mail: MailApp) -> None:
    email = unique_email("race")
    assert (await signup(mail.client, email)).status_code == 201
    token = await _reset_token(mail, email)
    first, second = mail.browser(), mail.browser()
    await csrf(first)
    await csrf(second)
    answers = await asyncio.gather(
        _reset(first, token, NEW_PASSWORD), _reset(second, token, "the other passphrase 4242 zz")
    )
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    winner = NEW_PASSWORD if answers[0].status_code == 200 else "the other passphrase 4242 zz"
    assert (await login(mail.browser(), email, winner)).status_code == 200
    assert len(await mail.inbox(email, CHANGED)) == 1


async def test_a_malformed_address_gets_the_same_answer(mail: MailApp) -> None:
    for address in ("not an address", "x" * 400, "@example.com"):
        response = await _request_reset(mail.client, address)
        assert response.status_code == 202 and response.json() == {"status": "reset_requested"}
    assert await mail.deliver() == 0
