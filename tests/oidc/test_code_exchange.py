"""The authorization_code grant: what the tokens say, how they are signed, and single-use codes."""

from __future__ import annotations

import pytest

from tests.conftest import ISSUER
from tests.oidc.helpers import OP, expected_at_hash, invalid_token, oauth_error, pkce, unverified, verify


async def test_code_exchange_returns_verifiable_tokens_a_relying_party_can_rely_on(op: OP) -> None:
    account = await op.sign_up()

    for alg in ("Ed25519", "ES256", "RS256"):
        await _check_code_exchange(op, alg, account["user"]["id"], account["session"]["id"])


async def test_by_default_id_tokens_are_rs256_and_access_tokens_ed25519(op: OP) -> None:
    """OIDC Core: RS256 is the ID-token algorithm every relying party verifies without options; Authlib
    1.x cannot compute at_hash for Ed25519 and openid-client expects RS256 unless configured."""
    await op.sign_up()
    issued = await op.provider.create_client(name="Defaults", redirect_uris=["https://rp.example/callback"])
    assert issued.client.id_token_alg == "RS256" and issued.client.signing_alg == "Ed25519"
    rp = await op.register(signing_alg="Ed25519")

    tokens = await op.tokens(rp)

    id_header, _ = unverified(tokens.id_token)
    access_header, _ = unverified(tokens.access)
    assert (id_header["alg"], access_header["alg"]) == ("RS256", "Ed25519")
    claims = verify(tokens.id_token, await op.jwks(), "RS256")
    assert claims["at_hash"] == expected_at_hash(tokens.access, "RS256")
    refreshed = (await op.refresh(rp, tokens.refresh)).json()
    assert unverified(refreshed["id_token"])[0]["alg"] == "RS256"


async def _check_code_exchange(op: OP, alg: str, user_id: str, sid: str) -> None:
    rp = await op.register(signing_alg=alg, id_token_alg=alg)
    code, verifier, params = await op.code(rp)

    response = await op.exchange(rp, code, verifier)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert set(body["scope"].split()) == {"openid", "email", "offline_access"}
    assert body["refresh_token"] and "." not in body["refresh_token"]  # opaque
    keys = await op.jwks()
    now = op.clock.now()

    header, _ = unverified(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == alg and header["kid"]
    access = verify(body["access_token"], keys, alg)
    assert access["iss"] == ISSUER
    assert access["sub"] == user_id
    audience = access["aud"] if isinstance(access["aud"], list) else [access["aud"]]
    assert ISSUER in audience
    assert access["exp"] - access["iat"] == 300
    assert abs(access["iat"] - now) <= 1
    assert access["jti"] and access["client_id"] == rp.client_id
    assert set(access["scope"].split()) == {"openid", "email", "offline_access"}
    assert not {"email", "name", "email_verified", "given_name", "family_name"} & set(access)

    id_header, _ = unverified(body["id_token"])
    assert id_header["alg"] == alg and id_header["kid"] and id_header.get("typ") != "at+jwt"
    id_claims = verify(body["id_token"], keys, alg)
    assert id_claims["iss"] == ISSUER
    assert id_claims["aud"] == rp.client_id or id_claims["aud"] == [rp.client_id]
    assert id_claims["sub"] == user_id
    assert id_claims["nonce"] == params["nonce"]
    assert abs(id_claims["auth_time"] - now) <= 1
    assert id_claims["amr"] == ["pwd"]
    assert id_claims["acr"]
    assert id_claims["sid"] == sid
    assert id_claims["exp"] > now and id_claims["iat"] <= now + 1
    assert id_claims["at_hash"] == expected_at_hash(body["access_token"], alg)
    # a wrong algorithm is not accepted for the same token
    other = "ES256" if alg != "ES256" else "RS256"
    with pytest.raises(Exception):  # noqa: B017 - joserfc raises several error types
        verify(body["id_token"], keys, other)


async def test_access_token_lifetime_follows_the_client_setting(op: OP) -> None:
    rp = await op.register(access_token_lifetime=120)
    await op.sign_up()

    tokens = await op.tokens(rp)

    claims = unverified(tokens.access)[1]
    assert claims["exp"] - claims["iat"] == 120 and tokens.body["expires_in"] == 120


async def test_without_the_nonce_the_id_token_has_none(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()

    tokens = await op.tokens(rp, nonce=None)

    assert "nonce" not in unverified(tokens.id_token)[1]


async def test_a_client_without_the_refresh_grant_gets_no_refresh_token(op: OP) -> None:
    rp = await op.register(grant_types=("authorization_code",))
    await op.sign_up()

    tokens = await op.tokens(rp)

    assert "refresh_token" not in tokens.body and tokens.body["id_token"]


async def test_a_code_is_single_use_and_a_replay_revokes_what_it_issued(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)
    first = (await op.exchange(rp, code, verifier)).json()
    assert (await op.userinfo(first["access_token"])).status_code == 200

    replay = await op.exchange(rp, code, verifier)

    oauth_error(replay, 400, "invalid_grant")
    oauth_error(await op.refresh(rp, first["refresh_token"]), 400, "invalid_grant")
    invalid_token(await op.userinfo(first["access_token"]))
    introspected = await op.introspect(rp, first["access_token"])
    assert introspected.json() == {"active": False}
    user_id = unverified(first["access_token"])[1]["sub"]
    kinds = [e.kind.value for e in await op.services.audit_log.list_for_user(user_id)]
    assert "authorization_code_replay" in kinds


async def test_a_code_expires_after_60_seconds(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)
    fresh_code, fresh_verifier, _ = await op.code(rp)

    op.clock.advance(61)

    oauth_error(await op.exchange(rp, code, verifier), 400, "invalid_grant")
    op.clock.advance(-2)  # 59 s after issue: still good
    assert (await op.exchange(rp, fresh_code, fresh_verifier)).status_code == 200


async def test_wrong_code_verifier_is_invalid_grant_and_burns_the_code(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)
    oauth_error(await op.exchange(rp, code, pkce()[0]), 400, "invalid_grant")
    oauth_error(await op.exchange(rp, code, verifier), 400, "invalid_grant")


async def test_missing_or_malformed_code_verifier_is_invalid_grant(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()

    for verifier in ("", "short", "x" * 129, "bad verifier with spaces" * 3, "%" * 43):
        code, _, _ = await op.code(rp)
        oauth_error(await op.exchange(rp, code, verifier), 400, "invalid_grant")


async def test_wrong_redirect_uri_is_invalid_grant(op: OP) -> None:
    rp = await op.register(redirect_uris=("https://rp.example/callback", "https://rp.example/other"))
    await op.sign_up()
    code, verifier, _ = await op.code(rp)

    response = await op.token(
        rp,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://rp.example/other",
            "code_verifier": verifier,
        },
    )

    oauth_error(response, 400, "invalid_grant")


async def test_a_code_issued_to_another_client_is_invalid_grant(op: OP) -> None:
    rp = await op.register()
    thief = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)

    body = oauth_error(await op.exchange(thief, code, verifier), 400, "invalid_grant")

    assert "access_token" not in body


async def test_unknown_code_is_invalid_grant(op: OP) -> None:
    rp = await op.register()

    oauth_error(await op.exchange(rp, "not-a-code", "v" * 43), 400, "invalid_grant")


async def test_a_code_whose_session_ended_is_invalid_grant(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)
    await op.browser_csrf()
    assert (await op.browser.post("/api/v1/logout")).status_code == 204

    oauth_error(await op.exchange(rp, code, verifier), 400, "invalid_grant")
