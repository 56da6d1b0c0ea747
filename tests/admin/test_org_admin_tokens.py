"""Org-admin tokens: an organization's admins and owners administer it through /admin/v1/orgs/{org}/...
with a user's access token carrying `organization threshold:org_admin` for that organization, checked at
each request; the operator's threshold:admin token keeps working for every organization."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.admin.helpers import (
    REDIRECT_URI,
    Admin,
    bearer,
    make_admin,
    register,
    services_of,
    user_access_token,
)
from tests.conftest import ISSUER, signup, unique_email
from threshold.oidc.provider import IssuedClient

ORG_ADMIN_SCOPE = "openid organization threshold:org_admin"


@dataclass
class Person:
    email: str
    user_id: str
    browser: httpx.AsyncClient
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class People:
    """Accounts, each signed in in a browser of its own, on the app of the operator's `admin`."""

    admin: Admin
    app: IssuedClient
    browsers: list[httpx.AsyncClient]

    async def person(
        self, org: dict[str, Any] | None, role: str, scope: str = ORG_ADMIN_SCOPE, *, email: str | None = None
    ) -> Person:
        """A new account, `role` in `org` (selected in its session) when given, with an access token."""
        browser = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.admin.http.app, client=("203.0.113.9", 50000)),  # type: ignore[attr-defined]
            base_url=ISSUER,
            headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
        )
        self.browsers.append(browser)
        email = email or unique_email(role)
        signed_up = await signup(browser, email)
        assert signed_up.status_code == 201, signed_up.text
        person = Person(email, signed_up.json()["user"]["id"], browser)
        if org is not None:
            added = await self.admin.post(f"/orgs/{org['id']}/members", {"email": email, "role": role})
            assert added.status_code == 200, added.text
            selected = await browser.post("/api/v1/organizations/select", json={"org": org["slug"]})
            assert selected.status_code == 200, selected.text
        person.token = (await user_access_token(browser, self.app, scope))["access_token"]
        return person


@dataclass
class World:
    """The operator, an org console app, two organizations, and people with org-admin tokens."""

    people: People
    acme: dict[str, Any]
    acme_domain: str
    """Verified for acme (by the operator): acme's admins add accounts at it without an invitation."""
    globex: dict[str, Any]
    owner: Person
    org_admin: Person
    member: Person
    globex_owner: Person

    @property
    def admin(self) -> Admin:
        return self.people.admin

    @property
    def app(self) -> IssuedClient:
        return self.people.app

    async def person(
        self, org: dict[str, Any] | None, role: str, scope: str = ORG_ADMIN_SCOPE, *, email: str | None = None
    ) -> Person:
        return await self.people.person(org, role, scope, email=email)

    def at_acme(self, prefix: str) -> str:
        return unique_email(prefix).replace("@example.com", f"@{self.acme_domain}")


@pytest.fixture
async def world(client: httpx.AsyncClient) -> AsyncIterator[World]:
    admin = await make_admin(client)
    app = await register(
        client,
        name="Org console",
        redirect_uris=[REDIRECT_URI],
        first_party=True,
        scopes=["openid", "organization", "threshold:org_admin"],
    )
    tag = unique_email("o").split("@")[0].replace(".", "-")
    acme = (await admin.post("/orgs", {"name": f"Acme {tag}"})).json()
    globex = (await admin.post("/orgs", {"name": f"Globex {tag}"})).json()
    acme_domain = f"{tag}.example"
    assert (await admin.post(f"/orgs/{acme['id']}/domains", {"domain": acme_domain})).status_code == 201
    trusted = await admin.post(f"/orgs/{acme['id']}/domains/{acme_domain}/verify", {"trust": True})
    assert trusted.status_code == 200, trusted.text
    people = People(admin, app, [])
    try:
        yield World(
            people,
            acme,
            acme_domain,
            globex,
            owner=await people.person(acme, "owner"),
            org_admin=await people.person(acme, "admin"),
            member=await people.person(acme, "member"),
            globex_owner=await people.person(globex, "owner"),
        )
    finally:
        for browser in people.browsers:
            await browser.aclose()


def refused(response: httpx.Response, status: int = 403, error: str = "insufficient_scope") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["www-authenticate"] == f'Bearer realm="threshold", error="{error}"'


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


async def members(world: World) -> list[tuple[str, str]]:
    listed = await world.admin.get(f"/orgs/{world.acme['id']}/members")
    return sorted((m["email"], m["role"]) for m in listed.json()["members"])


async def test_an_admin_or_owner_administers_its_own_organization(world: World) -> None:
    http = world.admin.http
    for person in (world.owner, world.org_admin):
        base = f"/admin/v1/orgs/{world.acme['slug']}"
        assert (await http.get(base, headers=person.headers)).json() == world.acme
        assert (
            await http.get(f"/admin/v1/orgs/{world.acme['id']}", headers=person.headers)
        ).status_code == 200
        listed = await http.get(f"{base}/members", headers=person.headers)
        assert listed.status_code == 200 and person.email in listed.text
        newcomer = unique_email("newcomer")
        joiner = await world.person(None, "member", email=world.at_acme("joiner"))  # at acme's domain
        added = await http.post(
            f"{base}/members", json={"email": joiner.email, "role": "admin"}, headers=person.headers
        )
        assert added.status_code == 200 and added.json()["role"] == "admin", added.text
        removed = await http.delete(f"{base}/members/{joiner.email}", headers=person.headers)
        assert removed.status_code == 204, removed.text
        domain = f"{newcomer.split('@')[0].replace('.', '-')}.example"
        claimed = await http.post(f"{base}/domains", json={"domain": domain}, headers=person.headers)
        assert claimed.status_code == 201 and claimed.json()["verified"] is False, claimed.text
        assert domain in (await http.get(f"{base}/domains", headers=person.headers)).text
        trusted = await http.post(
            f"{base}/domains/{domain}/verify", json={"trust": True}, headers=person.headers
        )
        problem(trusted, 403, "operator_required")  # a domain is trusted on the operator's word only
        invited = await http.post(
            f"{base}/invitations", json={"email": newcomer, "role": "member"}, headers=person.headers
        )
        assert invited.status_code == 201, invited.text


async def test_the_operators_token_keeps_working_for_every_organization(world: World) -> None:
    for org in (world.acme, world.globex):
        assert (await world.admin.get(f"/orgs/{org['slug']}/members")).status_code == 200
    owner_b = await world.admin.post(
        f"/orgs/{world.acme['id']}/members", {"email": world.globex_owner.email, "role": "owner"}
    )
    assert owner_b.status_code == 200, owner_b.text
    trusted = await world.admin.post(
        f"/orgs/{world.acme['id']}/domains", {"domain": f"op-{world.acme['slug']}.example"}
    )
    assert trusted.status_code == 201
    verified = await world.admin.post(
        f"/orgs/{world.acme['id']}/domains/op-{world.acme['slug']}.example/verify", {"trust": True}
    )
    assert verified.status_code == 200 and verified.json()["trusted"] is True, verified.text
    assert (
        await world.admin.delete(f"/orgs/{world.acme['id']}/members/{world.owner.email}")
    ).status_code == 204
    assert (await world.admin.get("/orgs/nope")).status_code == 404


async def test_what_an_org_admin_token_may_not_reach(world: World) -> None:
    http = world.admin.http
    acme, globex = world.acme, world.globex
    for person in (world.owner, world.org_admin):
        for method, path in (
            ("GET", f"/admin/v1/orgs/{globex['id']}"),
            ("GET", f"/admin/v1/orgs/{globex['slug']}/members"),
            ("POST", f"/admin/v1/orgs/{globex['id']}/members"),
            ("DELETE", f"/admin/v1/orgs/{globex['id']}/members/{world.globex_owner.email}"),
            ("POST", f"/admin/v1/orgs/{globex['id']}/invitations"),
            ("GET", "/admin/v1/orgs/no-such-org/members"),  # 403 too: nothing said about other orgs
            ("GET", "/admin/v1/orgs"),
            ("POST", "/admin/v1/orgs"),
            ("GET", "/admin/v1/clients"),
            ("GET", "/admin/v1/users"),
            ("POST", "/admin/v1/keys/rotate"),
        ):
            body = {"email": person.email, "role": "owner", "name": "x"} if method == "POST" else None
            refused(await http.request(method, path, json=body, headers=person.headers))
    globex_members = (await world.admin.get(f"/orgs/{globex['id']}/members")).json()["members"]
    assert [m["email"] for m in globex_members] == [world.globex_owner.email]
    # A plain member's token, with both scopes, administers nothing.
    for method, path in (
        ("GET", f"/admin/v1/orgs/{acme['id']}/members"),
        ("GET", f"/admin/v1/orgs/{acme['id']}"),
    ):
        refused(await http.request(method, path, headers=world.member.headers))
    refused(
        await http.post(
            f"/admin/v1/orgs/{acme['id']}/members",
            json={"email": world.member.email, "role": "owner"},
            headers=world.member.headers,
        )
    )
    # An owner's token without threshold:org_admin, or one for no organization, administers nothing.
    plain = await user_access_token(world.owner.browser, world.app, "openid organization")
    refused(await http.get(f"/admin/v1/orgs/{acme['id']}/members", headers=bearer(plain["access_token"])))
    nowhere = await world.person(None, "admin")
    added = await world.admin.post(f"/orgs/{acme['id']}/members", {"email": nowhere.email, "role": "owner"})
    assert added.status_code == 200  # an owner now, but its token names no organization
    refused(await http.get(f"/admin/v1/orgs/{acme['id']}/members", headers=nowhere.headers))
    assert (await http.get(f"/admin/v1/orgs/{acme['id']}/members")).status_code == 401


async def test_an_org_admin_adds_only_its_own_domains_accounts_and_learns_nothing_of_others(
    world: World,
) -> None:
    """Anyone else joins by invitation (their consent); whether an address has an account is not said."""
    http, base = world.admin.http, f"/admin/v1/orgs/{world.acme['id']}/members"
    outsider = await world.person(None, "member")  # an account at another domain
    for email in (outsider.email, unique_email("nobody"), world.globex_owner.email, "not an address"):
        answer = await http.post(
            base, json={"email": email, "role": "member"}, headers=world.org_admin.headers
        )
        problem(answer, 403, "invitation_required")
        problem(
            await http.delete(f"{base}/{email}", headers=world.org_admin.headers), 404, "member_not_found"
        )
    problem(
        await http.post(
            base, json={"email": world.at_acme("nobody"), "role": "member"}, headers=world.org_admin.headers
        ),
        404,
        "user_not_found",  # at its own verified domain, the organization may know
    )
    assert outsider.email not in [m[0] for m in await members(world)]
    by_operator = await world.admin.post(f"/orgs/{world.acme['id']}/members", {"email": outsider.email})
    assert by_operator.status_code == 200  # the operator adds anyone
    changed = await http.post(
        base, json={"email": outsider.email, "role": "admin"}, headers=world.org_admin.headers
    )
    assert changed.status_code == 200 and changed.json()["role"] == "admin"  # a member already: its role
    problem(
        await world.admin.delete(f"/orgs/{world.acme['id']}/members/{unique_email('x')}"),
        404,
        "user_not_found",
    )


async def test_only_owners_add_change_or_remove_owners(world: World) -> None:
    http, base = world.admin.http, f"/admin/v1/orgs/{world.acme['id']}"
    admin, owner = world.org_admin, world.owner
    newcomer = await world.person(None, "member", email=world.at_acme("newcomer"))
    before = await members(world)
    for response in (
        await http.post(
            f"{base}/members", json={"email": newcomer.email, "role": "owner"}, headers=admin.headers
        ),
        await http.post(
            f"{base}/members", json={"email": owner.email, "role": "member"}, headers=admin.headers
        ),
        await http.post(
            f"{base}/members", json={"email": admin.email, "role": "owner"}, headers=admin.headers
        ),
        await http.delete(f"{base}/members/{owner.email}", headers=admin.headers),
        await http.post(
            f"{base}/invitations", json={"email": newcomer.email, "role": "owner"}, headers=admin.headers
        ),
    ):
        problem(response, 403, "owner_required")
    assert await members(world) == before
    made = await http.post(
        f"{base}/members", json={"email": newcomer.email, "role": "owner"}, headers=owner.headers
    )
    assert made.status_code == 200 and made.json()["role"] == "owner", made.text
    assert (await http.delete(f"{base}/members/{newcomer.email}", headers=owner.headers)).status_code == 204
    invited = await http.post(
        f"{base}/invitations",
        json={"email": unique_email("next-owner"), "role": "owner"},
        headers=owner.headers,
    )
    assert invited.status_code == 201, invited.text
    demoted = await http.post(
        f"{base}/members", json={"email": admin.email, "role": "member"}, headers=owner.headers
    )
    assert demoted.status_code == 200


async def test_the_role_and_the_grant_are_checked_at_each_request(world: World) -> None:
    http, base = world.admin.http, f"/admin/v1/orgs/{world.acme['id']}/members"
    admin = world.org_admin
    assert (await http.get(base, headers=admin.headers)).status_code == 200

    demoted = await world.admin.post(
        f"/orgs/{world.acme['id']}/members", {"email": admin.email, "role": "member"}
    )
    assert demoted.status_code == 200
    refused(await http.get(base, headers=admin.headers))  # the same token, a member now

    promoted = await world.admin.post(
        f"/orgs/{world.acme['id']}/members", {"email": admin.email, "role": "admin"}
    )
    assert promoted.status_code == 200
    assert (await http.get(base, headers=admin.headers)).status_code == 200

    assert (await world.admin.delete(f"/orgs/{world.acme['id']}/members/{admin.email}")).status_code == 204
    refused(await http.get(base, headers=admin.headers), 401, "invalid_token")  # its grant ended with it
    readded = await world.admin.post(
        f"/orgs/{world.acme['id']}/members", {"email": admin.email, "role": "admin"}
    )
    assert readded.status_code == 200
    refused(await http.get(base, headers=admin.headers), 401, "invalid_token")  # ended for good


async def test_the_audit_trail_names_who_acted(world: World) -> None:
    newcomer = await world.person(None, "member", email=world.at_acme("audited"))
    base = f"/admin/v1/orgs/{world.acme['id']}/members"
    by_admin = await world.admin.http.post(
        base, json={"email": newcomer.email, "role": "member"}, headers=world.org_admin.headers
    )
    assert by_admin.status_code == 200
    by_operator = await world.admin.delete(f"/orgs/{world.acme['id']}/members/{newcomer.email}")
    assert by_operator.status_code == 204

    events = await services_of(world.admin.http).audit_log.list_for_user(newcomer.user_id, limit=50)
    added = next(e for e in events if e.kind.value == "org_member_added")
    removed = next(e for e in events if e.kind.value == "org_member_removed")
    assert added.detail["actor"] == f"user:{world.org_admin.user_id}"
    assert added.user_agent == f"admin-api user:{world.org_admin.user_id}"
    assert removed.detail["actor"] == f"client:{world.admin.issued.client.client_id}"


async def test_only_owners_connect_an_identity_provider_and_only_over_https(world: World) -> None:
    """An IdP speaks for every address at the organization's verified domains (its owners' too): an
    admin connecting one of their own could sign in as an owner, so connections are the owners'."""
    http, base = world.admin.http, f"/admin/v1/orgs/{world.acme['id']}/connections"
    body = {"type": "oidc", "issuer": "https://idp.acme.example", "client_id": "c", "client_secret": "s"}
    problem(await http.post(base, json=body, headers=world.org_admin.headers), 403, "owner_required")
    problem(
        await http.post(base, json={**body, "issuer": "http://127.0.0.1:9/"}, headers=world.owner.headers),
        400,
        "invalid_request",
    )
    made = await http.post(base, json=body, headers=world.owner.headers)
    assert made.status_code == 201, made.text
    assert "client_secret" not in made.text
    listed = await http.get(base, headers=world.org_admin.headers)  # admins may look
    assert [c["id"] for c in listed.json()["connections"]] == [made.json()["id"]]
    gone = await http.delete(f"{base}/{made.json()['id']}", headers=world.org_admin.headers)
    problem(gone, 403, "owner_required")
    refused(await http.get(base, headers=world.globex_owner.headers))  # another organization's owner
    assert (await http.delete(f"{base}/{made.json()['id']}", headers=world.owner.headers)).status_code == 204


async def test_only_owners_make_or_revoke_scim_tokens(world: World) -> None:
    """A SCIM token provisions and deactivates the organization's people (owners included): it is the
    owners' to make and revoke, as connections are; admins may see that tokens exist, never a secret."""
    http, base = world.admin.http, f"/admin/v1/orgs/{world.acme['id']}/scim-tokens"
    problem(
        await http.post(base, json={"name": "Entra ID"}, headers=world.org_admin.headers),
        403,
        "owner_required",
    )
    made = await http.post(base, json={"name": "Entra ID"}, headers=world.owner.headers)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    token, token_id = made.json()["token"], made.json()["id"]
    assert made.json()["base_url"] == f"{ISSUER}/scim/v2"
    scim = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/scim/v2/Users", headers=scim)).status_code == 200

    listed = await http.get(base, headers=world.org_admin.headers)
    assert listed.status_code == 200 and [t["id"] for t in listed.json()["tokens"]] == [token_id]
    assert token not in listed.text
    refused(await http.get(base, headers=world.globex_owner.headers))  # another organization's owner
    refused(await http.get(base, headers=world.member.headers))
    problem(await http.delete(f"{base}/{token_id}", headers=world.org_admin.headers), 403, "owner_required")
    assert (await http.get("/scim/v2/Users", headers=scim)).status_code == 200

    assert (await http.delete(f"{base}/{token_id}", headers=world.owner.headers)).status_code == 204
    assert (await http.get("/scim/v2/Users", headers=scim)).status_code == 401  # revoked at once
    operator = await world.admin.post(f"/orgs/{world.acme['id']}/scim-tokens", {"name": "Okta"})
    assert operator.status_code == 201, operator.text
