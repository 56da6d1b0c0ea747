"""Who may use /admin/v1: only a client-credentials token that carries threshold:admin.

A user's access token never grants admin rights, even when the user's app may request the scope."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.helpers import (
    REDIRECT_URI,
    bearer,
    client_credentials,
    make_admin,
    register,
    register_service,
    service_token,
    services_of,
    user_access_token,
)
from tests.client.helpers import access_token, forge, generate
from tests.conftest import ISSUER, signup, unique_email
from threshold.oidc.provider import ADMIN_SCOPE

# One request per kind of operation; each must be refused before it does anything.
REQUESTS = [
    ("GET", "/admin/v1/clients"),
    ("POST", "/admin/v1/clients"),
    ("GET", "/admin/v1/clients/some-client"),
    ("PATCH", "/admin/v1/clients/some-client"),
    ("POST", "/admin/v1/clients/some-client/secret"),
    ("DELETE", "/admin/v1/clients/some-client"),
    ("GET", "/admin/v1/users"),
    ("POST", "/admin/v1/users/someone@example.com/revoke-sessions"),
    ("POST", "/admin/v1/users/someone@example.com/disable"),
    ("POST", "/admin/v1/users/someone@example.com/enable"),
    ("GET", "/admin/v1/keys"),
    ("POST", "/admin/v1/keys/rotate"),
]
NEW_CLIENT = {"name": "sneaky", "grant_types": ["client_credentials"], "scopes": [ADMIN_SCOPE]}


async def send(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    json = NEW_CLIENT if (method, path) == ("POST", "/admin/v1/clients") else None
    if method == "PATCH":
        json = {"name": "renamed"}
    return await client.request(method, path, headers=headers, json=json)


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"] == f'Bearer realm="threshold", error="{error}"'


def assert_challenged(response: httpx.Response) -> None:
    """RFC 6750 section 3.1: a request with no credentials gets a challenge without an error code."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="threshold"'


async def assert_nothing_changed(
    client: httpx.AsyncClient, clients_before: int, kids_before: set[str]
) -> None:
    services = services_of(client)
    assert len(await services.provider.list_clients()) == clients_before
    assert {k.kid for k in await services.provider.keys.keys()} == kids_before


async def test_no_token_or_a_garbage_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    await make_admin(client)  # so that keys and one client exist
    services = services_of(client)
    clients_before = len(await services.provider.list_clients())
    kids_before = {k.kid for k in await services.provider.keys.keys()}
    forged = access_token(
        generate("Ed25519", "ed25519-forged"),
        iss=ISSUER,
        aud=ISSUER,
        sub="x",
        client_id="x",
        scope=ADMIN_SCOPE,
    )
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        for method, path in REQUESTS:
            assert_challenged(await send(client, method, path, headers))
    for headers in (
        bearer("garbage"),
        bearer("a.b.c"),
        bearer(forged),
        bearer(forge({"alg": ["Ed25519"], "kid": "k", "typ": "at+jwt"}, {"sub": "x"})),
        bearer(forge({"alg": "none", "typ": "at+jwt"}, {"sub": "x", "scope": ADMIN_SCOPE})),
    ):
        for method, path in REQUESTS:
            assert_refused(await send(client, method, path, headers), 401, "invalid_token")
    await assert_nothing_changed(client, clients_before, kids_before)


async def test_a_revoked_admin_token_is_refused(client: httpx.AsyncClient) -> None:
    admin = await make_admin(client)
    assert (await admin.get("/clients")).status_code == 200
    assert admin.issued.secret is not None
    revoked = await client.post(
        "/oauth2/revoke",
        data={"token": admin.token},
        auth=(admin.issued.client.client_id, admin.issued.secret),
    )
    assert revoked.status_code == 200
    assert_refused(await admin.get("/clients"), 401, "invalid_token")


async def test_a_service_token_without_the_admin_scope_is_403(client: httpx.AsyncClient) -> None:
    await make_admin(client)
    services = services_of(client)
    clients_before = len(await services.provider.list_clients())
    kids_before = {k.kid for k in await services.provider.keys.keys()}
    plain = await service_token(client, await register_service(client, "api:read"))
    # a client that may have threshold:admin but asked for less
    narrowed = await service_token(
        client, await register_service(client, "api:read", ADMIN_SCOPE), "api:read"
    )
    clients_before += 2
    for token in (plain, narrowed):
        for method, path in REQUESTS:
            assert_refused(await send(client, method, path, bearer(token)), 403, "insufficient_scope")
    await assert_nothing_changed(client, clients_before, kids_before)


async def test_a_service_cannot_grant_itself_the_admin_scope(client: httpx.AsyncClient) -> None:
    issued = await register_service(client, "api:read")
    response = await client_credentials(client, issued, f"api:read {ADMIN_SCOPE}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("also_service", [False, True], ids=["code-client", "code-and-service-client"])
async def test_a_users_access_token_with_the_admin_scope_is_403(
    client: httpx.AsyncClient, also_service: bool
) -> None:
    """The authorization-code flow can carry threshold:admin when the client may request it, but the
    token speaks for a user (sub != client_id), and a user's token never grants admin rights."""
    grants = ["authorization_code", *(["client_credentials"] if also_service else [])]
    app = await register(
        client,
        name="app",
        redirect_uris=[REDIRECT_URI],
        first_party=True,
        grant_types=grants,
        scopes=["openid", ADMIN_SCOPE],
    )
    signed_up = await signup(client, unique_email("operator"))
    assert signed_up.status_code == 201, signed_up.text
    user_id = signed_up.json()["user"]["id"]
    tokens = await user_access_token(client, app, f"openid {ADMIN_SCOPE}")
    assert ADMIN_SCOPE in tokens["scope"].split()
    claims = (await services_of(client).provider.verify_access_token(tokens["access_token"])).claims
    assert claims["sub"] == user_id != claims["client_id"]
    for method, path in REQUESTS:
        response = await send(client, method, path, bearer(tokens["access_token"]))
        assert_refused(response, 403, "insufficient_scope")
    if also_service:  # while the same client's own service token is an admin token
        assert (
            await client.get("/admin/v1/clients", headers=bearer(await service_token(client, app)))
        ).status_code == 200
