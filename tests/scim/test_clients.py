"""Request shapes replayed from Microsoft Entra ID's and Okta's provisioning (their documented
sequences), on both backends."""

from __future__ import annotations

from tests.scim.conftest import ENTERPRISE, USER_SCHEMA, ScimOrg


async def test_entra_id_sequence(scim: ScimOrg) -> None:
    address = scim.address("Test_User_dfeef4c5")
    # 1. does the user exist? (Entra asks by userName, then creates)
    probe = await scim.get("/Users", filter=f'userName eq "{address}"')
    assert probe.status_code == 200 and probe.json()["totalResults"] == 0
    created = await scim.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7c0b3c3b9c0a",
            "userName": address,
            "active": True,
            "displayName": "Test User",
            "emails": [{"primary": True, "type": "work", "value": address}],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": "givenName familyName",
                "familyName": "familyName",
                "givenName": "givenName",
            },
            "roles": [],
            ENTERPRISE: {"department": "Engineering", "employeeNumber": "42"},
        },
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user[ENTERPRISE]["department"] == "Engineering"
    path = f"/Users/{user['id']}"
    # 2. Entra looks it up by externalId too
    by_external = await scim.get("/Users", filter='externalId eq "0a21f0f2-8d2a-4f8e-bf98-7c0b3c3b9c0a"')
    assert by_external.json()["totalResults"] == 1
    # 3. attribute updates: "Replace" with a value object, and a value-path filter on emails
    new_address = scim.address("Test_User_renamed")
    updated = await scim.patch(
        path,
        [
            {"op": "Replace", "value": {"displayName": "Renamed", "name.givenName": "Renamed"}},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_address},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Research"},
        ],
    )
    assert updated.status_code in (200, 204), updated.text
    now = (await scim.get(path)).json()
    assert now["displayName"] == "Renamed" and now["emails"][0]["value"] == new_address
    assert now[ENTERPRISE]["department"] == "Research"
    account = await scim.services.users.get_by_email(new_address.lower())
    assert account is not None
    # 4. disable: "Replace" with the boolean as a string
    disabled = await scim.patch(path, [{"op": "Replace", "path": "active", "value": "False"}])
    assert disabled.status_code in (200, 204), disabled.text
    refreshed = await scim.services.users.get(account.id)
    assert refreshed is not None and refreshed.disabled
    # 5. delete
    assert (await scim.delete(path)).status_code == 204


async def test_okta_sequence(scim: ScimOrg) -> None:
    address = scim.address("okta.user")
    probe = await scim.get("/Users", filter=f'userName eq "{address}"', startIndex=1, count=100)
    assert probe.status_code == 200 and probe.json()["totalResults"] == 0
    body = {
        "schemas": [USER_SCHEMA],
        "userName": address,
        "name": {"givenName": "Okta", "familyName": "User"},
        "emails": [{"primary": True, "value": address, "type": "work"}],
        "displayName": "Okta User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    created = await scim.post("/Users", body)
    assert created.status_code == 201, created.text
    user = created.json()
    assert "password" not in user
    from sqlalchemy import select

    from threshold.adapters.sql.schema import scim_resources

    async with scim.services.engine.connect() as conn:
        documents = (await conn.execute(select(scim_resources.c.document))).scalars().all()
    assert documents and not any("1mz050nq" in d for d in documents)  # no password kept
    account = await scim.services.users.get_by_email(address)
    assert account is not None and await scim.services.users.get_password(account.id) is None
    # Okta updates by replacing the whole resource
    put = await scim.put(
        f"/Users/{user['id']}", {**body, "id": user["id"], "displayName": "Okta U.", "active": False}
    )
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "Okta U." and put.json()["active"] is False
    refreshed = await scim.services.users.get(account.id)
    assert refreshed is not None and refreshed.disabled
