"""Invitations to an organization: emailed, single use, expiring, and only for the invited address."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import assert_problem, form_value
from tests.conftest import ISSUER, csrf, login, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of
from threshold.core.accounts import OPERATOR
from threshold.core.orgs.models import Organization

INVITED = "You are invited to join"
BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}


async def _org(mail: MailApp) -> Organization:
    return await mail.services.orgs.create(name=f"Acme {unique_email('x')[:10]}", context=OPERATOR)


async def _invite(mail: MailApp, org: Organization, email: str, role: str = "admin") -> str:
    await mail.services.orgs.invite(
        org, email=email, role=role, invited_by="Ada (the operator)", context=OPERATOR
    )
    message = await mail.last(email, INVITED)
    assert (org.name in message.subject and "admin" in message.text) or role != "admin"
    return message.link("/invitations/accept")


async def _roles(mail: MailApp, org: Organization) -> list[tuple[str, str]]:
    return [(u.email, m.role.value) for m, u in await mail.services.orgs.members(org)]


async def test_the_invited_person_signs_up_and_joins_with_the_role(mail: MailApp) -> None:
    org, email = await _org(mail), unique_email("invited")
    link = await _invite(mail, org, email)
    browser = mail.browser()
    first = await browser.get(link)
    assert first.status_code == 303 and first.headers["location"].startswith("/login?next=")
    assert (await signup(browser, email)).status_code == 201
    page = await browser.get(link)
    assert page.status_code == 200 and org.name in page.text and "admin" in page.text
    assert await _roles(mail, org) == []  # opening the page (a mail scanner, a preview) joins nobody
    accepted = await browser.post(
        "/invitations/accept",
        data={"csrf_token": form_value(page.text, "csrf_token"), "token": token_of(link)},
        headers=BROWSER_POST,
    )
    assert accepted.status_code == 200 and "You are now admin" in accepted.text, accepted.text
    assert await _roles(mail, org) == [(email, "admin")]
    again = await browser.post(
        "/invitations/accept",
        data={"csrf_token": form_value(page.text, "csrf_token"), "token": token_of(link)},
        headers=BROWSER_POST,
    )
    assert again.status_code == 400 and "cannot be used" in again.text


async def test_an_invitation_is_for_its_address_only(mail: MailApp) -> None:
    org, invited, other = await _org(mail), unique_email("invited"), unique_email("other")
    token = token_of(await _invite(mail, org, invited))
    stranger = mail.browser()
    assert (await signup(stranger, other)).status_code == 201
    await csrf(stranger)
    assert_problem(
        await stranger.post("/api/v1/invitations/accept", json={"token": token}), 400, "invitation_invalid"
    )
    assert await _roles(mail, org) == []
    owner = mail.browser()
    assert (await signup(owner, invited.upper())).status_code == 201  # the same address, as typed
    await csrf(owner)
    joined = await owner.post("/api/v1/invitations/accept", json={"token": token})
    assert joined.status_code == 200 and joined.json() == {"org_id": org.id, "role": "admin"}, joined.text


async def test_an_invitation_expires_and_is_used_once_under_concurrency(mail: MailApp) -> None:
    org, email = await _org(mail), unique_email("race")
    token = token_of(await _invite(mail, org, email, role="member"))
    browsers: list[httpx.AsyncClient] = [mail.browser() for _ in range(4)]
    assert (await signup(browsers[0], email)).status_code == 201
    for browser in browsers[1:]:  # the same person in four tabs: one cookie jar's session and CSRF token
        browser.cookies.update(browsers[0].cookies)
        browser.headers["X-CSRF-Token"] = browsers[0].headers["X-CSRF-Token"]
    answers = await asyncio.gather(
        *(b.post("/api/v1/invitations/accept", json={"token": token}) for b in browsers)
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400], [a.text for a in answers]

    late = token_of(await _invite(mail, org, email, role="owner"))
    await mail.let_time_pass(7 * 86400 + 1)
    fresh = mail.browser()
    assert (await login(fresh, email)).status_code == 200
    expired = await fresh.post("/api/v1/invitations/accept", json={"token": late})
    assert_problem(expired, 400, "invitation_invalid")
    assert await _roles(mail, org) == [(email, "member")]
    unknown = await fresh.post("/api/v1/invitations/accept", json={"token": "x" * 40})
    assert_problem(unknown, 400, "invitation_invalid")
