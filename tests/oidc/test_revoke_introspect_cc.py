"""client_credentials (RFC 6749 4.4), revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import ISSUER
from tests.oidc.helpers import OP, invalid_token, oauth_error, unverified, verify
from threshold.oidc.errors import OAuthError

SERVICE_SCOPES = ("api:read", "api:write")


async def test_client_credentials_token_is_for_the_client_itself(op: OP) -> None:
    rp = await op.register(grant_types=("client_credentials",), scopes=SERVICE_SCOPES, redirect_uris=())

    response = await op.token(rp, {"grant_type": "client_credentials", "scope": "api:read"})

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["scope"] == "api:read" and body["token_type"] == "Bearer"
    assert "refresh_token" not in body and "id_token" not in body
    keys = await op.jwks()
    claims = verify(body["access_token"], keys, "Ed25519")
    assert claims["sub"] == rp.client_id and claims["client_id"] == rp.client_id
    assert claims["scope"] == "api:read" and claims["iss"] == ISSUER
    assert unverified(body["access_token"])[0]["typ"] == "at+jwt"


async def test_client_credentials_without_scope_gets_the_allowed_api_scopes_only(op: OP) -> None:
    rp = await op.register(
        grant_types=("client_credentials",), scopes=("openid", "email", *SERVICE_SCOPES), redirect_uris=()
    )

    body = (await op.token(rp, {"grant_type": "client_credentials"})).json()

    assert set(body["scope"].split()) == set(SERVICE_SCOPES)


async def test_client_credentials_refuses_scopes_beyond_the_client(op: OP) -> None:
    rp = await op.register(
        grant_types=("client_credentials",), scopes=("openid", "email", *SERVICE_SCOPES), redirect_uris=()
    )

    for scope in ("api:admin", "api:read api:admin", "openid", "email", "offline_access"):
        response = await op.token(rp, {"grant_type": "client_credentials", "scope": scope})
        oauth_error(response, 400, "invalid_scope")


async def test_public_clients_cannot_use_client_credentials(op: OP) -> None:
    public = await op.register(public=True)

    oauth_error(await op.token(public, {"grant_type": "client_credentials"}), 400, "unauthorized_client")
    with pytest.raises(OAuthError):
        await op.register(public=True, grant_types=("client_credentials",), redirect_uris=())


async def test_revoking_a_refresh_token_revokes_its_family(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    rotated = (await op.refresh(rp, tokens.refresh)).json()["refresh_token"]

    response = await op.revoke(rp, tokens.refresh)  # the already-rotated parent

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    oauth_error(await op.refresh(rp, rotated), 400, "invalid_grant")
    assert (await op.introspect(rp, rotated)).json() == {"active": False}
    assert await op.signed_in()  # revocation is not reuse: the browser session stays


async def test_revoking_the_current_refresh_token(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    assert (await op.revoke(rp, tokens.refresh, token_type_hint="refresh_token")).status_code == 200

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_revoking_an_unknown_token_is_200(op: OP) -> None:
    rp = await op.register()

    for token in ("unknown", "x" * 43, "a.b.c", "y" * 5000):
        response = await op.revoke(rp, token)
        assert response.status_code == 200, (token[:10], response.text)


async def test_revocation_needs_client_authentication_and_a_token(op: OP) -> None:
    rp = await op.register()

    oauth_error(await op.rp.post("/oauth2/revoke", data={"token": "x"}), 401, "invalid_client")
    oauth_error(await op.revoke(rp, ""), 400, "invalid_request")


async def test_revoking_an_access_token(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    other = await op.tokens(rp)

    assert (await op.revoke(rp, tokens.access, token_type_hint="access_token")).status_code == 200

    invalid_token(await op.userinfo(tokens.access))
    assert (await op.introspect(rp, tokens.access)).json() == {"active": False}
    assert (await op.userinfo(other.access)).status_code == 200  # only that token
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200


async def test_another_client_cannot_revoke_a_token(op: OP) -> None:
    rp = await op.register()
    intruder = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    assert (await op.revoke(intruder, tokens.access)).status_code == 200
    assert (await op.revoke(intruder, tokens.refresh)).status_code == 200

    assert (await op.userinfo(tokens.access)).status_code == 200
    assert (await op.introspect(rp, tokens.access)).json()["active"] is True
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200


async def test_a_public_client_can_revoke_its_own_tokens(op: OP) -> None:
    rp = await op.register(public=True)
    await op.sign_up()
    tokens = await op.tokens(rp)

    assert (await op.revoke(rp, tokens.refresh)).status_code == 200

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_introspection_of_an_active_access_token(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)
    claims = unverified(tokens.access)[1]

    response = await op.introspect(rp, tokens.access)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["sub"] == account["user"]["id"]
    assert body["client_id"] == rp.client_id
    assert body["scope"] == tokens.body["scope"]
    assert body["iss"] == ISSUER
    assert body["exp"] == claims["exp"] and body["iat"] == claims["iat"] and body["jti"] == claims["jti"]
    assert body["token_type"] == "Bearer"
    assert "email" not in body


async def test_introspection_of_an_active_refresh_token(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)

    body = (await op.introspect(rp, tokens.refresh, token_type_hint="refresh_token")).json()

    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["sub"] == account["user"]["id"] and body["client_id"] == rp.client_id
    assert body["scope"] == tokens.body["scope"]
    assert body["exp"] > op.clock.now()
    # once rotated it is inactive
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    assert (await op.introspect(rp, tokens.refresh)).json() == {"active": False}


async def test_introspection_is_refused_to_public_and_unauthenticated_clients(op: OP) -> None:
    rp = await op.register()
    public = await op.register(public=True)
    await op.sign_up()
    tokens = await op.tokens(rp)

    refused = await op.introspect(public, tokens.access)
    anonymous = await op.rp.post("/oauth2/introspect", data={"token": tokens.access})

    for response in (refused, anonymous):
        oauth_error(response, 401, "invalid_client")
        assert "active" not in response.json()
        assert response.headers.get("www-authenticate")


async def test_introspection_answers_for_tokens_of_every_audience_the_provider_issues(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    """An API introspects the tokens issued for it (RFC 8707 `resource`), not only the issuer's own."""
    api_url = "https://api.example.test"
    op = await op_factory(oidc={"audiences": [api_url]})
    service = await op.register(grant_types=("client_credentials",), scopes=SERVICE_SCOPES, redirect_uris=())
    api = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    issued = await op.token(service, {"grant_type": "client_credentials", "resource": api_url})
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert unverified(token)[1]["aud"] == api_url

    body = (await op.introspect(api, token)).json()

    assert body["active"] is True and body["aud"] == api_url
    invalid_token(await op.userinfo(token))  # userinfo answers the issuer's own audience only


async def test_a_token_for_another_audience_is_revoked_too(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    """RFC 7009: the client that holds a token issued for an API (`resource`) can revoke it; revocation
    and introspection recognise the same tokens (before, revocation accepted only the issuer's audience
    and answered 200 while the token stayed active)."""
    api_url = "https://api.example.test"
    op = await op_factory(oidc={"audiences": [api_url]})
    service = await op.register(grant_types=("client_credentials",), scopes=SERVICE_SCOPES, redirect_uris=())
    api = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    issued = await op.token(service, {"grant_type": "client_credentials", "resource": api_url})
    token = issued.json()["access_token"]
    assert (await op.introspect(api, token)).json()["active"] is True

    assert (await op.revoke(service, token)).status_code == 200

    assert (await op.introspect(api, token)).json() == {"active": False}
