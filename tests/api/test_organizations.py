"""The organization switcher: `GET /api/v1/organizations`, `POST /api/v1/organizations/select` and the
account page's form (`POST /account/organization`). Only organizations the person belongs to; every
switch is a new session id (the old one ends); same-origin and CSRF rules as every other write."""

from __future__ import annotations

import httpx

from tests.api.helpers import (
    SESSION_COOKIE,
    assert_problem,
    browser,
    form_value,
    put_session_cookie,
    session_token,
    set_cookie,
)
from tests.conftest import ISSUER, login, signup, unique_email
from threshold.core.accounts import OPERATOR
from threshold.core.orgs.models import Organization
from threshold.services import Services

PAGE_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}


def services_of(client: httpx.AsyncClient) -> Services:
    services: Services = client.services  # type: ignore[attr-defined]
    return services


async def two_orgs(client: httpx.AsyncClient, email: str) -> tuple[Organization, Organization]:
    """Acme (joined first, as admin) and Globex (as member) for the account `email`."""
    orgs = services_of(client).orgs
    tag = unique_email("o").split("@")[0].replace(".", "-")
    acme = await orgs.create(name=f"Acme {tag}", context=OPERATOR)
    globex = await orgs.create(name=f"Globex {tag}", context=OPERATOR)
    await orgs.add_member(acme, email=email, role="admin", context=OPERATOR)
    await orgs.add_member(globex, email=email, role="member", context=OPERATOR)
    return acme, globex


async def listed(client: httpx.AsyncClient) -> list[tuple[str, str, bool]]:
    response = await client.get("/api/v1/organizations")
    assert response.status_code == 200, response.text
    return [(o["slug"], o["role"], o["selected"]) for o in response.json()["organizations"]]


async def test_the_api_lists_memberships_and_selects_one_under_a_new_session(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("switch")
    assert (await signup(client, email)).status_code == 201
    assert await listed(client) == []
    acme, globex = await two_orgs(client, email)
    assert (await login(client, email)).status_code == 200  # a new session selects the first joined
    assert sorted(await listed(client)) == sorted(
        [(acme.slug, "admin", True), (globex.slug, "member", False)]
    )
    old = client.cookies[SESSION_COOKIE]
    old_id = (await client.get("/api/v1/session")).json()["session"]["id"]

    selected = await client.post("/api/v1/organizations/select", json={"org": globex.id})

    assert selected.status_code == 200, selected.text
    body = selected.json()
    assert body["organization"] == {
        "id": globex.id,
        "slug": globex.slug,
        "name": globex.name,
        "role": "member",
        "selected": True,
    }
    assert body["user"]["email"] == email and body["session"]["id"] != old_id
    cookie = set_cookie(selected, SESSION_COOKIE)
    assert cookie["value"] != old and cookie.get("httponly") is True and cookie.get("secure") is True
    assert (await client.get("/api/v1/session")).json()["session"]["id"] == body["session"]["id"]
    assert sorted(await listed(client)) == sorted(
        [(acme.slug, "admin", False), (globex.slug, "member", True)]
    )
    async with browser(client) as stale:
        put_session_cookie(stale, old)
        assert_problem(await stale.get("/api/v1/session"), 401, "not_authenticated")
    sessions = (await client.get("/api/v1/sessions")).json()["sessions"]
    assert [s["id"] for s in sessions] == [body["session"]["id"]]


async def test_only_an_organization_the_person_belongs_to(client: httpx.AsyncClient) -> None:
    email = unique_email("switch")
    assert (await signup(client, email)).status_code == 201
    acme, _ = await two_orgs(client, email)
    stranger_org = await services_of(client).orgs.create(name=f"Initech {acme.slug}", context=OPERATOR)
    before = client.cookies[SESSION_COOKIE]
    for org in (stranger_org.id, stranger_org.slug, "no-such-org"):
        answer = await client.post("/api/v1/organizations/select", json={"org": org})
        assert_problem(answer, 404, "org_not_found")  # the same answer: nothing said about other orgs
    assert client.cookies[SESSION_COOKIE] == before
    assert (await client.get("/api/v1/session")).status_code == 200
    assert (await client.post("/api/v1/organizations/select", json={"org": ""})).status_code == 400
    assert (
        await client.post("/api/v1/organizations/select", json={"org": acme.id, "x": 1})
    ).status_code == 400
    async with browser(client) as anonymous:
        assert_problem(await anonymous.get("/api/v1/organizations"), 401, "not_authenticated")
        no_session = await anonymous.post("/api/v1/organizations/select", json={"org": acme.id})
        assert_problem(no_session, 401, "not_authenticated")


async def test_select_follows_the_same_origin_and_csrf_rules(client: httpx.AsyncClient) -> None:
    email = unique_email("switch")
    assert (await signup(client, email)).status_code == 201
    acme, _ = await two_orgs(client, email)
    token = client.headers.pop("X-CSRF-Token")
    assert_problem(
        await client.post("/api/v1/organizations/select", json={"org": acme.id}), 403, "csrf_failed"
    )
    client.headers["X-CSRF-Token"] = token
    cross = await client.post(
        "/api/v1/organizations/select", json={"org": acme.id}, headers={"origin": "https://evil.example"}
    )
    assert_problem(cross, 403, "csrf_failed")
    assert [s for s in await listed(client) if s[2]] == []  # nothing was selected


async def test_the_account_page_shows_the_organization_and_switches_with_a_form(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("page")
    assert (await signup(client, email)).status_code == 201
    page = await client.get("/account")
    assert 'id="org-select"' not in page.text and "Organization</h2>" not in page.text  # a member of nothing
    acme, globex = await two_orgs(client, email)
    assert (await login(client, email)).status_code == 200
    page = await client.get("/account")
    assert page.status_code == 200
    assert f"Working in <strong>{acme.name}</strong> as" in page.text and ">admin<" in page.text
    assert '<label for="org-select"' in page.text and 'action="/account/organization"' in page.text
    old = client.cookies[SESSION_COOKIE]

    switched = await client.post(
        "/account/organization",
        data={"csrf_token": form_value(page.text, "csrf_token"), "org": globex.id},
        headers=PAGE_POST,
    )

    assert switched.status_code == 303 and switched.headers["location"] == "/account?done=organization"
    assert session_token(switched) != old
    page = await client.get("/account?done=organization")
    assert f"Working in <strong>{globex.name}</strong> as" in page.text and ">member<" in page.text
    assert "The organization was switched" in page.text
    async with browser(client) as stale:
        put_session_cookie(stale, old)
        assert (await stale.get("/account")).headers["location"] == "/login?next=/account"
    # Another organization's id, a missing CSRF token, a foreign origin: refused, nothing switched.
    stranger = await services_of(client).orgs.create(name=f"Initech {acme.slug}", context=OPERATOR)
    csrf_token = form_value(page.text, "csrf_token")
    refused = await client.post(
        "/account/organization", data={"csrf_token": csrf_token, "org": stranger.id}, headers=PAGE_POST
    )
    assert refused.status_code == 404 and "No such organization" in refused.text
    assert (
        await client.post("/account/organization", data={"org": acme.id}, headers=PAGE_POST)
    ).status_code == 403
    foreign = await client.post(
        "/account/organization",
        data={"csrf_token": csrf_token, "org": acme.id},
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert [s[0] for s in await listed(client) if s[2]] == [globex.slug]


async def test_the_page_form_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.post("/account/organization", data={"org": "x"}, headers=PAGE_POST)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/account"
