"""The SCIM protocol over Threshold's storage, on both backends: discovery, authentication, base URLs
from the issuer, filters and pagination, ETags, attribute selection, the verified-domain rule,
uniqueness, and SCIM errors (never a 5xx) for bad input."""

from __future__ import annotations

import gc
import json
import random
import secrets
from typing import Any

import httpx
import pytest

from tests.scim.conftest import (
    BASE,
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM_JSON,
    USER_SCHEMA,
    ScimOrg,
    assert_scim_error,
    make_scim_org,
)


async def test_service_provider_config_is_public_and_says_what_is_supported(scim: ScimOrg) -> None:
    response = await scim.http.get("/scim/v2/ServiceProviderConfig")
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["etag"]["supported"] is True
    assert config["bulk"]["supported"] is False
    assert config["meta"]["location"] == f"{BASE}/ServiceProviderConfig"
    assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]


async def test_everything_else_needs_a_live_token(scim: ScimOrg) -> None:
    for path in ("/Users", "/Groups", "/Schemas", "/ResourceTypes", "/Users/nope"):
        missing = await scim.http.get(f"/scim/v2{path}")
        assert_scim_error(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = await scim.http.get(f"/scim/v2{path}", headers={"Authorization": "Bearer scim_" + "x" * 43})
        assert_scim_error(wrong, 401)
    other_scheme = await scim.http.get("/scim/v2/Users", headers={"Authorization": f"Basic {scim.token}"})
    assert_scim_error(other_scheme, 401)
    schemas = await scim.get("/Schemas")
    assert schemas.status_code == 200
    assert {s["id"] for s in schemas.json()["Resources"]} >= {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE}
    types = await scim.get("/ResourceTypes")
    assert {t["name"] for t in types.json()["Resources"]} == {"User", "Group"}


async def test_locations_come_from_the_issuer_not_the_host_header(scim: ScimOrg) -> None:
    address = scim.address()
    response = await scim.request(
        "POST",
        "/Users",
        json={"schemas": [USER_SCHEMA], "userName": address, "emails": [{"value": address, "type": "work"}]},
        headers={"Host": "evil.example", "Content-Type": SCIM_JSON},
    )
    assert response.status_code == 201, response.text
    location = f"{BASE}/Users/{response.json()['id']}"
    assert response.headers["location"] == location
    assert response.json()["meta"]["location"] == location


async def test_filters_match_exactly_and_pages_count_right(scim: ScimOrg) -> None:
    made = [
        await scim.create_user(scim.address(f"{name}.{secrets.token_hex(2)}"), externalId=f"ext-{name}")
        for name in ("alice", "albert", "bob", "carol", "alina")
    ]
    names = [u["userName"] for u in made]

    async def search(expression: str, **params: Any) -> dict[str, Any]:
        response = await scim.get("/Users", filter=expression, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def found(body: dict[str, Any]) -> set[str]:
        return {r["userName"] for r in body.get("Resources", [])}

    exact = await search(f'userName eq "{names[2].upper()}"')  # userName is case-insensitive
    assert found(exact) == {names[2]} and exact["totalResults"] == 1
    assert found(await search('externalId eq "ext-carol"')) == {names[3]}
    assert found(await search('externalId eq "EXT-carol"')) == set()  # externalId is case-exact
    assert found(await search(f'id eq "{made[0]["id"]}"')) == {names[0]}
    assert found(await search('userName sw "al"')) == {names[0], names[1], names[4]}
    assert found(await search('userName co "ic"')) == {names[0]}
    assert found(await search(f'userName eq "{names[0]}" or userName eq "{names[3]}"')) == {
        names[0],
        names[3],
    }
    assert found(await search(f'userName eq "{names[0]}" and externalId eq "ext-alice"')) == {names[0]}
    assert found(await search(f'userName eq "{names[0]}" and externalId eq "ext-bob"')) == set()
    assert found(await search('userName eq "x" or externalId eq "ext-bob"')) == {names[2]}
    assert len(found(await search("externalId pr"))) == 5
    assert found(await search('emails[type eq "work" and value sw "bob"]')) == {names[2]}
    assert found(await search(f'not (userName sw "al") and userName ew "{scim.domain}"')) == {
        names[2],
        names[3],
    }

    page = await search('userName sw "al"', startIndex=2, count=1)
    assert page["totalResults"] == 3 and page["itemsPerPage"] == 1 and page["startIndex"] == 2
    listing = await scim.get("/Users", startIndex=4, count=10)
    body = listing.json()
    assert body["totalResults"] == 5 and body["itemsPerPage"] == 2 and body["startIndex"] == 4
    only_count = await scim.get("/Users", count=0)
    assert only_count.json()["totalResults"] == 5 and not only_count.json().get("Resources")


async def test_etags_make_writes_conditional(scim: ScimOrg) -> None:
    user = await scim.create_user()
    path = f"/Users/{user['id']}"
    etag = user["meta"]["version"]
    got = await scim.get(path)
    assert got.headers["etag"] == etag
    not_modified = await scim.request("GET", path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    patched = await scim.patch(
        path, [{"op": "replace", "path": "displayName", "value": "Pat"}], **{"If-Match": etag}
    )
    assert patched.status_code in (200, 204), patched.text
    new_etag = patched.headers["etag"]
    assert new_etag != etag
    stale = await scim.patch(
        path, [{"op": "replace", "path": "displayName", "value": "P"}], **{"If-Match": etag}
    )
    assert_scim_error(stale, 412)
    stale_delete = await scim.delete(path, **{"If-Match": etag})
    assert_scim_error(stale_delete, 412)
    assert (await scim.delete(path, **{"If-Match": new_etag})).status_code == 204


async def test_attributes_and_excluded_attributes(scim: ScimOrg) -> None:
    user = await scim.create_user(displayName="Pat Lee", title="Engineer")
    only = (await scim.get(f"/Users/{user['id']}", attributes="userName")).json()
    assert only["userName"] == user["userName"] and "title" not in only and only["id"] == user["id"]
    without = (await scim.get(f"/Users/{user['id']}", excludedAttributes="title")).json()
    assert "title" not in without and without["displayName"] == "Pat Lee"


async def test_only_addresses_at_verified_domains_are_provisioned(scim: ScimOrg) -> None:
    for address in ("someone@gmail.example", f"someone@sub.{scim.domain}", "not-an-address"):
        body = {"schemas": [USER_SCHEMA], "userName": address, "emails": [{"value": address, "type": "work"}]}
        refused = assert_scim_error(await scim.post("/Users", body), 400, "invalidValue")
        assert "verified domain" in refused["detail"]
    no_address = {"schemas": [USER_SCHEMA], "userName": "just-a-name"}
    assert_scim_error(await scim.post("/Users", no_address), 400, "invalidValue")
    # a userName that is not an address is fine when the work email is at a verified domain
    address = scim.address()
    body = {"schemas": [USER_SCHEMA], "userName": "pat-lee", "emails": [{"value": address, "type": "work"}]}
    assert (await scim.post("/Users", body)).status_code == 201
    assert await scim.services.users.get_by_email(address) is not None
    # moving a User to an address outside the verified domains is refused
    user = await scim.create_user()
    moved = await scim.patch(
        f"/Users/{user['id']}",
        [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "x@gmail.example"}],
    )
    assert_scim_error(moved, 400, "invalidValue")


async def test_user_names_are_unique_per_organization(scim: ScimOrg) -> None:
    user = await scim.create_user()
    again = {
        "schemas": [USER_SCHEMA],
        "userName": user["userName"].upper(),
        "emails": [{"value": scim.address()}],
    }
    assert_scim_error(await scim.post("/Users", again), 409, "uniqueness")
    same_address = {
        "schemas": [USER_SCHEMA],
        "userName": "someone-else",
        "emails": [{"value": user["userName"], "type": "work"}],
    }
    assert_scim_error(await scim.post("/Users", same_address), 409, "uniqueness")
    group = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering"}
    assert (await scim.post("/Groups", group)).status_code == 201
    assert_scim_error(await scim.post("/Groups", {**group, "displayName": "ENGINEERING"}), 409, "uniqueness")


async def test_a_token_never_reaches_another_organizations_resources(scim: ScimOrg) -> None:
    other = await make_scim_org(scim.http, scim.services)
    mine = await scim.create_user()
    theirs = await other.create_user()
    group = await other.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Theirs"})
    group_id = group.json()["id"]
    for path in (f"/Users/{theirs['id']}", f"/Groups/{group_id}"):
        assert_scim_error(await scim.get(path), 404)
        assert_scim_error(await scim.put(path, {"schemas": [USER_SCHEMA], "userName": "x"}), 404)
        assert_scim_error(
            await scim.patch(path, [{"op": "replace", "path": "displayName", "value": "x"}]), 404
        )
        assert_scim_error(await scim.delete(path), 404)
    listed = (await scim.get("/Users")).json()
    assert [r["id"] for r in listed["Resources"]] == [mine["id"]]
    by_id = (await scim.get("/Users", filter=f'id eq "{theirs["id"]}"')).json()
    assert by_id["totalResults"] == 0
    assert (await scim.get("/Groups")).json()["totalResults"] == 0
    # nor can it provision an address at the other organization's domain, or put its users in a group
    body = {"schemas": [USER_SCHEMA], "userName": other.address(), "emails": [{"value": other.address()}]}
    assert_scim_error(await scim.post("/Users", body), 400, "invalidValue")
    sneaky = {"schemas": [GROUP_SCHEMA], "displayName": "Sneaky", "members": [{"value": theirs["id"]}]}
    assert_scim_error(await scim.post("/Groups", sneaky), 400, "invalidValue")
    still = await other.services.users.get_by_email(theirs["userName"])
    assert still is not None and not still.disabled
    assert (await other.get(f"/Users/{theirs['id']}")).status_code == 200


async def test_bad_input_gets_scim_errors(scim: ScimOrg) -> None:
    user = await scim.create_user()
    path = f"/Users/{user['id']}"
    raw = {"Content-Type": SCIM_JSON}
    assert_scim_error(await scim.request("POST", "/Users", content=b"{not json", headers=raw), 400)
    assert_scim_error(await scim.request("PATCH", path, content=b"[1,2", headers=raw), 400)
    wrong_schema = {"schemas": ["urn:example:nope"], "userName": scim.address()}
    assert_scim_error(await scim.post("/Users", wrong_schema), 400)
    assert_scim_error(await scim.get("/Users", filter='userName eq "unterminated'), 400, "invalidFilter")
    assert_scim_error(await scim.get("/Users", filter="userName zz 1"), 400, "invalidFilter")
    assert_scim_error(await scim.get("/Users/does-not-exist"), 404)
    assert_scim_error(await scim.delete("/Users/does-not-exist"), 404)
    assert_scim_error(await scim.get("/Nothing"), 404)
    bad_op = await scim.patch(path, [{"op": "frobnicate", "path": "active", "value": True}])
    assert_scim_error(bad_op, 400)
    bad_path = await scim.patch(path, [{"op": "replace", "path": "emails[type eq", "value": "x"}])
    assert_scim_error(bad_path, 400)
    read_only = await scim.patch(path, [{"op": "replace", "path": "id", "value": "mine"}])
    assert read_only.status_code in (400, 409) and read_only.status_code < 500
    huge = {"schemas": [USER_SCHEMA], "userName": scim.address(), "title": "x" * (70 * 1024)}
    assert_scim_error(await scim.post("/Users", huge), 413)
    unknown_member = {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": "nobody"}]}
    assert_scim_error(await scim.post("/Groups", unknown_member), 400, "invalidValue")
    not_json = await scim.request(
        "POST", "/Users", content=b"userName=x", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code == 415


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "bool", "null", "float"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(
            ["", "x", "False", "true", "Replace", 'emails[type eq "work"].value', "\u0000", "é" * 5]
        )
    if kind == "int":
        return rng.choice([0, -1, 2**63, 1])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "float":
        return 1.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = [
        "schemas",
        "userName",
        "emails",
        "active",
        "Operations",
        "op",
        "path",
        "value",
        "members",
        "name",
        "id",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


async def test_random_bodies_never_get_a_5xx(scim: ScimOrg) -> None:
    rng = random.Random(7)
    user = await scim.create_user()
    group = (await scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Fuzz"})).json()
    targets = [
        ("POST", "/Users"),
        ("POST", "/Groups"),
        ("PUT", f"/Users/{user['id']}"),
        ("PATCH", f"/Users/{user['id']}"),
        ("PUT", f"/Groups/{group['id']}"),
        ("PATCH", f"/Groups/{group['id']}"),
        ("POST", "/Users/.search"),
    ]
    for _ in range(150):
        method, path = rng.choice(targets)
        body = _random_value(rng)
        if rng.random() < 0.5 and isinstance(body, dict):
            body["schemas"] = [
                rng.choice([USER_SCHEMA, GROUP_SCHEMA, "urn:ietf:params:scim:api:messages:2.0:PatchOp"])
            ]
        response = await scim.request(
            method, path, content=json.dumps(body).encode(), headers={"Content-Type": SCIM_JSON}
        )
        assert response.status_code < 500, (method, path, body, response.text)
        if response.status_code >= 400:
            assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    for expression in (
        'userName eq "',
        "((",
        'emails[type eq "work"',
        "userName pr and",
        "a.b.c eq 1",
        '"x"',
    ):
        response = await scim.get("/Users", filter=expression)
        assert 400 <= response.status_code < 500, (expression, response.text)


async def test_a_database_outage_is_a_503_with_retry_after(scim: ScimOrg) -> None:
    await scim.services.engine.dispose()
    engine = scim.services.engine
    # point the pool at nowhere: every checkout fails as an unreachable server would
    from sqlalchemy import event

    def refuse(*_: Any) -> None:
        raise ConnectionRefusedError("database down")

    event.listen(engine.sync_engine.pool, "checkout", refuse)
    try:
        response = await scim.get("/Users", filter='userName eq "x@y"')
    finally:
        event.remove(engine.sync_engine.pool, "checkout", refuse)
    body = assert_scim_error(response, 503)
    assert response.headers["retry-after"]
    assert "database" not in json.dumps(body).lower()


async def test_responses_carry_scim_headers(scim: ScimOrg) -> None:
    response = await scim.get("/Users")
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert isinstance(response, httpx.Response)


async def test_requests_build_no_message_model_once_the_app_is_up(
    scim: ScimOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scim2-server parametrizes its generic messages (ListResponse, SearchRequest, PatchOp ...) per
    request, and pydantic caches those models only weakly: unless the application holds them, the
    garbage collector takes them between requests and each search, patch or attribute selection builds
    one again (threshold.scim.app.pinned_generics). A provisioning sync must not pay that per request."""
    from pydantic._internal import _generics

    first = await scim.create_user()  # the application is built at its first request
    built: list[str] = []
    original = _generics.create_generic_submodel

    def counting(name: str, *args: Any) -> Any:
        built.append(name)
        return original(name, *args)

    monkeypatch.setattr(_generics, "create_generic_submodel", counting)
    for _ in range(2):
        for method, path, body, params in [
            ("GET", "/Users", None, {"filter": f'userName eq "{first["userName"]}"'}),
            ("GET", "/Groups", None, {"filter": 'displayName eq "nobody"'}),
            ("GET", f"/Users/{first['id']}", None, {"attributes": "userName"}),
            (
                "POST",
                "/.search",
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName pr"},
                {},
            ),
            (
                "PATCH",
                f"/Users/{first['id']}",
                {
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "replace", "path": "displayName", "value": "Pat"}],
                },
                {},
            ),
        ]:
            gc.collect()
            response = await scim.request(
                method, path, params=params, json=body, headers={"Content-Type": SCIM_JSON}
            )
            assert response.status_code in (200, 204), (path, response.text)
        gc.collect()
        await scim.create_user()
    assert built == []
