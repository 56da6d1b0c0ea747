"""Changing the address: a recent sign-in, a link to the new address, notices to the old one."""

from __future__ import annotations

import httpx

from tests.api.helpers import assert_problem
from tests.conftest import ISSUER, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of

CONFIRM_NEW = "Confirm your new email address"


async def _change(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/email/change", json={"email": email})


async def test_the_new_address_confirms_and_the_old_one_is_told(mail: MailApp) -> None:
    old, new = unique_email("old"), unique_email("new")
    assert (await signup(mail.client, old)).status_code == 201
    await mail.deliver()
    asked = await _change(mail.client, new.upper())
    assert asked.status_code == 202 and asked.json() == {"status": "confirmation_sent"}

    (confirmation,) = await mail.inbox(new)
    assert confirmation.subject.startswith(CONFIRM_NEW)
    link = confirmation.link("/verify-email")
    assert link.startswith(f"{ISSUER}/verify-email?") and "change=1" in link
    warning = await mail.last(old, "Your email address is being changed")
    assert new.upper() in warning.text.upper()
    assert (await mail.client.get("/api/v1/session")).json()["user"]["email"] == old  # not yet

    anyone = mail.browser()
    await csrf(anyone)
    done = await anyone.post("/api/v1/email/change/confirm", json={"token": token_of(link)})
    assert done.status_code == 200, done.text
    assert done.json()["user"]["email"].casefold() == new and done.json()["user"]["email_verified"] is True
    assert_problem(
        await anyone.post("/api/v1/email/change/confirm", json={"token": token_of(link)}),
        400,
        "token_invalid",
    )
    notice = await mail.last(old, "Your email address was changed")
    assert new.upper() in notice.text.upper()
    assert mail.smtp.to(new, "was changed") == []  # the notice goes to the old address only

    assert (await login(mail.browser(), new)).status_code == 200
    assert_problem(await login(mail.browser(), old), 401, "invalid_credentials")
    assert (await mail.client.get("/api/v1/session")).status_code == 200  # this session carries on


async def test_a_taken_address_is_refused_and_nothing_is_sent(mail: MailApp) -> None:
    mine, theirs = unique_email("mine"), unique_email("theirs")
    assert (await signup(mail.browser(), theirs)).status_code == 201
    assert (await signup(mail.client, mine)).status_code == 201
    await mail.deliver()
    before = len(mail.smtp.received)
    assert_problem(await _change(mail.client, theirs), 409, "email_unavailable")
    assert_problem(await _change(mail.client, mine), 400, "invalid_request")  # already yours
    assert_problem(await _change(mail.client, "not an address"), 400, "email_invalid")
    assert await mail.deliver() == 0 and len(mail.smtp.received) == before


async def test_changing_the_address_needs_a_recent_sign_in(mail: MailApp) -> None:
    email = unique_email("stale")
    assert (await signup(mail.client, email)).status_code == 201
    await mail.let_time_pass(mail.settings.mfa.reauthentication_window + 1)
    assert_problem(await _change(mail.client, unique_email("new")), 401, "reauthentication_required")
    anonymous = mail.browser()
    await csrf(anonymous)
    assert_problem(await _change(anonymous, unique_email("new")), 401, "not_authenticated")


async def test_links_sent_to_the_old_address_stop_working_after_the_change(mail: MailApp) -> None:
    old, new = unique_email("moved"), unique_email("moved")
    assert (await signup(mail.client, old)).status_code == 201
    helper = mail.browser()
    await csrf(helper)
    assert (await helper.post("/api/v1/password/reset/request", json={"email": old})).status_code == 202
    asker = mail.browser()
    await csrf(asker)
    assert (await asker.post("/api/v1/login/email", json={"email": old})).status_code == 202
    reset_token = token_of((await mail.last(old, "Reset your password")).link("/reset-password"))
    code = (await mail.last(old, "sign-in link")).code()

    assert (await _change(mail.client, new)).status_code == 202
    change = token_of((await mail.last(new, CONFIRM_NEW)).link("/verify-email"))
    assert (await helper.post("/api/v1/email/change/confirm", json={"token": change})).status_code == 200

    # Whoever still reads the old mailbox can no longer use what was sent there.
    assert_problem(await asker.post("/api/v1/login/email/verify", json={"code": code}), 400, "token_invalid")
    reset = await helper.post(
        "/api/v1/password/reset", json={"token": reset_token, "new_password": "copper meadow violin 2031"}
    )
    assert_problem(reset, 400, "token_invalid")
    assert (await login(mail.browser(), new)).status_code == 200
