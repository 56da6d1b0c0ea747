"""/admin/v1/orgs: organizations, members with roles, and domains claimed by one organization only."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.helpers import Admin, bearer, make_admin, register_service, service_token
from tests.conftest import signup, unique_email


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Admin:
    return await make_admin(client)


def assert_code(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


async def test_an_organization_is_created_found_by_id_or_slug_and_listed(admin: Admin) -> None:
    created = await admin.post("/orgs", {"name": "  Acme   Corp  "})
    assert created.status_code == 201, created.text
    org = created.json()
    assert set(org) == {"id", "slug", "name"} and org["slug"] == "acme-corp" and org["name"] == "Acme Corp"
    assert (await admin.get(f"/orgs/{org['id']}")).json() == org
    assert (await admin.get("/orgs/ACME-CORP")).json() == org
    assert org in (await admin.get("/orgs")).json()["orgs"]
    assert_code(await admin.post("/orgs", {"name": "Acme", "slug": "acme-corp"}), 409, "slug_taken")
    assert_code(await admin.post("/orgs", {"name": "Bad", "slug": "-no-"}), 400, "invalid_request")
    assert_code(await admin.get("/orgs/nope"), 404, "org_not_found")
    assert (await admin.post("/orgs", {"name": "X", "colour": "red"})).status_code == 400  # no silent extras


async def test_members_are_added_with_a_role_changed_and_removed(admin: Admin) -> None:
    org = (await admin.post("/orgs", {"name": f"Members {unique_email('o')[:8]}"})).json()
    email = unique_email("member")
    assert (await signup(admin.http, email)).status_code == 201
    added = await admin.post(f"/orgs/{org['slug']}/members", {"email": email, "role": "admin"})
    assert added.status_code == 200, added.text
    assert added.json()["role"] == "admin" and added.json()["org_id"] == org["id"]
    changed = await admin.post(f"/orgs/{org['id']}/members", {"email": email.upper(), "role": "owner"})
    assert changed.json()["role"] == "owner"
    members = (await admin.get(f"/orgs/{org['id']}/members")).json()["members"]
    assert [(m["email"], m["role"]) for m in members] == [(email, "owner")]
    assert_code(
        await admin.post(f"/orgs/{org['id']}/members", {"email": email, "role": "king"}),
        400,
        "invalid_request",
    )
    assert_code(
        await admin.post(f"/orgs/{org['id']}/members", {"email": unique_email("ghost")}),
        404,
        "user_not_found",
    )
    assert (await admin.delete(f"/orgs/{org['id']}/members/{email}")).status_code == 204
    assert (await admin.get(f"/orgs/{org['id']}/members")).json()["members"] == []
    assert_code(await admin.delete(f"/orgs/{org['id']}/members/{email}"), 404, "member_not_found")


async def test_a_domain_belongs_to_one_organization_and_is_verified_on_the_operators_word(
    admin: Admin,
) -> None:
    tag = unique_email("d").split("@")[0].replace(".", "-")
    first = (await admin.post("/orgs", {"name": f"First {tag}"})).json()
    second = (await admin.post("/orgs", {"name": f"Second {tag}"})).json()
    domain = f"{tag}.example"
    claimed = await admin.post(f"/orgs/{first['id']}/domains", {"domain": f" {domain.upper()}. "})
    assert claimed.status_code == 201, claimed.text
    claim = claimed.json()
    assert claim["domain"] == domain and claim["verified"] is False and claim["trusted"] is False
    assert claim["txt_name"] == f"_threshold-challenge.{domain}"
    assert claim["txt_value"].startswith("threshold-domain-verification=") and len(claim["txt_value"]) > 40
    again = await admin.post(f"/orgs/{first['id']}/domains", {"domain": domain})
    assert again.json()["txt_value"] == claim["txt_value"]  # the same claim, the same record to publish
    assert_code(await admin.post(f"/orgs/{second['id']}/domains", {"domain": domain}), 409, "domain_taken")
    assert_code(
        await admin.post(f"/orgs/{second['id']}/domains/{domain}/verify", {"trust": True}),
        404,
        "domain_not_found",
    )
    for bad in ("localhost", "*.example.com", "10.0.0.1", "exa mple.com", "a..b"):
        assert_code(await admin.post(f"/orgs/{first['id']}/domains", {"domain": bad}), 400, "invalid_request")
    verified = await admin.post(f"/orgs/{first['id']}/domains/{domain}/verify", {"trust": True})
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True and verified.json()["trusted"] is True
    listed = (await admin.get(f"/orgs/{first['id']}/domains")).json()["domains"]
    assert [d["domain"] for d in listed] == [domain] and listed[0]["verified"] is True


async def test_an_invitation_is_sent_for_a_role(admin: Admin) -> None:
    org = (await admin.post("/orgs", {"name": f"Invites {unique_email('i')[:8]}"})).json()
    sent = await admin.post(
        f"/orgs/{org['id']}/invitations", {"email": "Someone@Example.com", "role": "owner"}
    )
    assert sent.status_code == 201, sent.text
    assert (
        sent.json()["role"] == "owner" and sent.json()["org_id"] == org["id"] and "token" not in sent.json()
    )
    assert_code(
        await admin.post(f"/orgs/{org['id']}/invitations", {"email": "x@example.com", "role": "god"}),
        400,
        "invalid_request",
    )
    assert_code(
        await admin.post(f"/orgs/{org['id']}/invitations", {"email": "not an address"}), 400, "email_invalid"
    )


async def test_organizations_need_the_admin_scope(client: httpx.AsyncClient) -> None:
    other = await register_service(client, "api:read")
    token = await service_token(client, other)
    response = await client.get("/admin/v1/orgs", headers=bearer(token))
    assert response.status_code == 403, response.text
    assert (await client.post("/admin/v1/orgs", json={"name": "x"})).status_code == 401
