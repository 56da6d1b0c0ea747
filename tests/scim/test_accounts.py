"""SCIM Users are Threshold accounts, on both backends: an Entra-shaped deactivation ends the person's
sessions (their cookie stops working) and an upstream sign-in is refused; reactivation lets them sign in
again; deletion does the same as deactivation and removes the membership; a User provisioned before the
person's first SSO sign-in is the account that sign-in links to (not a duplicate); an account whose
address was never verified is claimed; groups mapped to roles set the role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.scim.conftest import GROUP_SCHEMA, ScimOrg, assert_scim_error
from tests.sso.conftest import SESSION_COOKIE, through_idp
from tests.support.oidc_idp import ScriptedIdp
from threshold.core.accounts import OPERATOR
from threshold.core.models import Aal, Amr, AuditKind
from threshold.core.orgs.models import OrgRole
from threshold.core.sso.models import Policy


@pytest.fixture
def idp() -> Iterator[ScriptedIdp]:
    server = ScriptedIdp().start()
    yield server
    server.stop()


async def connect(scim: ScimOrg, idp: ScriptedIdp, **policy: Any) -> None:
    await scim.services.sso.connections.add_oidc(
        scim.org,
        name="IdP",
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        policy=Policy(**policy),
        context=OPERATOR,
    )


async def sso_sign_in(scim: ScimOrg, idp: ScriptedIdp, address: str, subject: str) -> httpx.Response:
    scim.http.cookies.clear()
    return await through_idp(
        scim.http, f"/sso/start?email={address}", _idp=idp, sub=subject, email=address, email_verified=True
    )


async def session_status(scim: ScimOrg, cookie: str) -> int:
    scim.http.cookies.clear()
    scim.http.cookies.set(SESSION_COOKIE, cookie, domain="auth.threshold.test", path="/")
    return (await scim.http.get("/api/v1/session")).status_code


async def test_provisioned_person_signs_in_by_sso_deactivation_ends_it_and_reactivation_restores_it(
    scim: ScimOrg, idp: ScriptedIdp
) -> None:
    await connect(scim, idp)
    address = scim.address("alice")
    user = await scim.create_user(address)
    account = await scim.services.users.get_by_email(address)
    assert account is not None and account.email_verified and not account.disabled
    membership = await scim.services.orgs.membership(scim.org.id, account.id)
    assert membership is not None and membership.role is OrgRole.MEMBER

    back = await sso_sign_in(scim, idp, address, "alice-sub")
    assert back.status_code == 303, back.text[:300]
    cookie = back.cookies[SESSION_COOKIE]
    session = (await scim.http.get("/api/v1/session")).json()
    assert session["user"]["id"] == account.id  # linked to the provisioned account, not a new one
    assert await session_status(scim, cookie) == 200

    # Entra ID: PATCH with "Replace" and the boolean as a string
    deactivated = await scim.patch(
        f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": "False"}]
    )
    assert deactivated.status_code in (200, 204), deactivated.text
    assert await session_status(scim, cookie) == 401
    disabled = await scim.services.users.get(account.id)
    assert disabled is not None and disabled.disabled
    refused = await sso_sign_in(scim, idp, address, "alice-sub")
    assert SESSION_COOKIE not in refused.cookies
    assert (await scim.get(f"/Users/{user['id']}")).json()["active"] is False
    kinds = [e.kind for e in await scim.services.audit_log.list_for_user(account.id, limit=50)]
    assert AuditKind.SCIM_USER_DEACTIVATED in kinds
    revoked = [
        e
        for e in await scim.services.audit_log.list_for_user(account.id, limit=50)
        if e.kind is AuditKind.ACCESS_REVOKED
    ]
    assert any(e.detail.get("cause") == "scim_deactivated" for e in revoked)

    reactivated = await scim.patch(
        f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": "True"}]
    )
    assert reactivated.status_code in (200, 204), reactivated.text
    again = await sso_sign_in(scim, idp, address, "alice-sub")
    assert again.status_code == 303 and SESSION_COOKIE in again.cookies
    assert (await scim.http.get("/api/v1/session")).json()["user"]["id"] == account.id
    assert await session_status(scim, cookie) == 401  # the old session stays ended


async def test_deletion_ends_access_removes_membership_and_a_later_create_binds_again(
    scim: ScimOrg, idp: ScriptedIdp
) -> None:
    await connect(scim, idp)
    address = scim.address("bob")
    user = await scim.create_user(address)
    back = await sso_sign_in(scim, idp, address, "bob-sub")
    cookie = back.cookies[SESSION_COOKIE]
    account = await scim.services.users.get_by_email(address)
    assert account is not None

    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    assert_scim_error(await scim.get(f"/Users/{user['id']}"), 404)
    assert await session_status(scim, cookie) == 401
    assert await scim.services.orgs.membership(scim.org.id, account.id) is None
    gone = await scim.services.users.get(account.id)
    assert gone is not None and gone.disabled
    kinds = [e.kind for e in await scim.services.audit_log.list_for_user(account.id, limit=50)]
    assert AuditKind.SCIM_USER_DELETED in kinds

    recreated = await scim.create_user(address)
    assert recreated["id"] != user["id"]
    again = await scim.services.users.get_by_email(address)
    assert again is not None and again.id == account.id and not again.disabled
    assert await scim.services.orgs.membership(scim.org.id, account.id) is not None
    assert (await sso_sign_in(scim, idp, address, "bob-sub")).status_code == 303


async def test_okta_put_with_active_false_deactivates(scim: ScimOrg) -> None:
    address = scim.address("okta")
    user = await scim.create_user(address)
    account = await scim.services.users.get_by_email(address)
    assert account is not None
    issued = await scim.services.sessions.issue_session(
        user_id=account.id, aal=Aal.AAL1, amr=[Amr.PASSWORD], context=OPERATOR, org_id=scim.org.id
    )
    assert await session_status(scim, issued.token) == 200
    whole = {key: value for key, value in user.items() if key not in ("meta",)}
    replaced = await scim.put(f"/Users/{user['id']}", {**whole, "active": False})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["active"] is False
    assert await session_status(scim, issued.token) == 401
    assert (await scim.put(f"/Users/{user['id']}", {**whole, "active": True})).status_code == 200
    enabled = await scim.services.users.get(account.id)
    assert enabled is not None and not enabled.disabled


async def test_an_account_whose_address_was_never_verified_is_claimed(scim: ScimOrg) -> None:
    address = scim.address("squat")
    squatter = await scim.services.accounts.create_user(email=address, password="plum orbit candle harbor 42")
    assert not squatter.email_verified
    await scim.create_user(address)
    claimed = await scim.services.users.get(squatter.id)
    assert claimed is not None and claimed.email_verified
    assert await scim.services.users.get_password(squatter.id) is None  # the squatter's password is gone


async def test_a_changed_work_address_moves_the_account_only_within_the_verified_domains(
    scim: ScimOrg,
) -> None:
    address = scim.address("carol")
    user = await scim.create_user(address)
    account = await scim.services.users.get_by_email(address)
    assert account is not None
    new_address = scim.address("carol.new")
    changed = await scim.patch(
        f"/Users/{user['id']}",
        [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_address},
            {"op": "Replace", "path": "userName", "value": new_address},
        ],
    )
    assert changed.status_code in (200, 204), changed.text
    moved = await scim.services.users.get(account.id)
    assert moved is not None and moved.email == new_address and moved.email_verified


async def test_groups_mapped_to_roles_set_the_members_role(scim: ScimOrg, idp: ScriptedIdp) -> None:
    await connect(scim, idp, role_groups={"Org Admins": "admin"})
    alice = await scim.create_user(scim.address("alice"))
    bob = await scim.create_user(scim.address("bob"))
    ids = {}
    for name in ("alice", "bob"):
        found = await scim.services.users.get_by_email(scim.address(name))
        assert found is not None
        ids[name] = found.id

    async def role(name: str) -> OrgRole | None:
        membership = await scim.services.orgs.membership(scim.org.id, ids[name])
        return membership.role if membership else None

    # Entra: create the group, then add and remove members by PATCH
    created = await scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Org Admins", "externalId": "g1"}
    )
    assert created.status_code == 201, created.text
    group = created.json()
    path = f"/Groups/{group['id']}"
    added = await scim.patch(
        path, [{"op": "Add", "path": "members", "value": [{"value": alice["id"]}, {"value": bob["id"]}]}]
    )
    assert added.status_code in (200, 204), added.text
    assert await role("alice") is OrgRole.ADMIN and await role("bob") is OrgRole.ADMIN
    removed = await scim.patch(path, [{"op": "Remove", "path": f'members[value eq "{bob["id"]}"]'}])
    assert removed.status_code in (200, 204), removed.text
    assert await role("bob") is OrgRole.MEMBER and await role("alice") is OrgRole.ADMIN
    members = (await scim.get(path)).json()["members"]
    assert [m["value"] for m in members] == [alice["id"]]
    replaced = await scim.patch(path, [{"op": "Replace", "path": "members", "value": [{"value": bob["id"]}]}])
    assert replaced.status_code in (200, 204), replaced.text
    assert await role("alice") is OrgRole.MEMBER and await role("bob") is OrgRole.ADMIN
    filtered = (await scim.get("/Groups", filter='displayName eq "org admins"')).json()
    assert filtered["totalResults"] == 1
    # a deleted User leaves its groups; deleting the group drops the role
    assert (await scim.delete(f"/Users/{bob['id']}")).status_code == 204
    assert (await scim.get(path)).json().get("members", []) == []
    assert (await scim.delete(path)).status_code == 204
    assert await role("alice") is OrgRole.MEMBER
