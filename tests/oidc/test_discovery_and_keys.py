"""Discovery (OIDC Discovery 1.0) and the published signing keys, including rotation."""

from __future__ import annotations

from joserfc.jwk import KeySet

from tests.conftest import ISSUER
from tests.oidc.helpers import OP, unverified, verify
from threshold.oidc.models import KeyState

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def test_discovery_document_names_every_endpoint_of_this_issuer(op: OP) -> None:
    response = await op.rp.get("/.well-known/openid-configuration")

    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    doc = response.json()
    assert doc["issuer"] == ISSUER
    for name, path in {
        "authorization_endpoint": "/oauth2/authorize",
        "token_endpoint": "/oauth2/token",
        "userinfo_endpoint": "/oauth2/userinfo",
        "jwks_uri": "/oauth2/jwks",
        "revocation_endpoint": "/oauth2/revoke",
        "introspection_endpoint": "/oauth2/introspect",
        "end_session_endpoint": "/oauth2/logout",
    }.items():
        assert doc[name] == ISSUER + path
        # every advertised endpoint exists (none answers 404 or 405 to its method)
        method = "GET" if name in ("authorization_endpoint", "jwks_uri", "end_session_endpoint") else "POST"
        probe = await op.rp.request(method, path)
        assert probe.status_code not in (404, 405, 500), (name, probe.status_code)
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(doc["id_token_signing_alg_values_supported"]) == {"Ed25519", "ES256", "RS256"}
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc["id_token_signing_alg_values_supported"][0] == "RS256"  # the default, first
    assert {"client_secret_basic", "client_secret_post"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "openid" in doc["scopes_supported"]
    assert "public" in doc["subject_types_supported"]


async def test_jwks_publishes_public_keys_only_with_kid_alg_use(op: OP) -> None:
    response = await op.rp.get("/oauth2/jwks")
    well_known = await op.rp.get("/.well-known/jwks.json")

    assert response.status_code == 200 and well_known.status_code == 200
    assert well_known.json() == response.json()
    cache = response.headers["cache-control"]
    assert "public" in cache and "max-age=" in cache
    assert "json" in response.headers["content-type"]
    keys = response.json()["keys"]
    assert keys
    for jwk in keys:
        assert not PRIVATE_MEMBERS & set(jwk), jwk
        assert jwk["kid"] and jwk["use"] == "sig"
        assert jwk["alg"] in ("Ed25519", "ES256", "RS256")
        assert jwk["kty"] != "oct"  # never a symmetric key
    imported = KeySet.import_key_set(response.json())
    assert not any(key.is_private for key in imported)


async def test_jwks_publishes_the_active_and_the_next_key_of_every_algorithm(op: OP) -> None:
    published = {jwk["kid"] for jwk in (await op.rp.get("/oauth2/jwks")).json()["keys"]}

    ring = await op.provider.keys.keys()
    for alg in ("Ed25519", "ES256", "RS256"):
        states = {k.state for k in ring if k.alg == alg and k.kid in published}
        assert states == {KeyState.ACTIVE, KeyState.NEXT}, alg
    assert published == {k.kid for k in ring}


async def test_rotation_keeps_the_old_key_published_and_signs_with_the_new_one(op: OP) -> None:
    rp = await op.register(id_token_alg="Ed25519")  # both token kinds on one ring
    await op.sign_up()
    before = await op.tokens(rp)
    ring = await op.provider.keys.keys()
    old_active = next(k.kid for k in ring if k.alg == "Ed25519" and k.state is KeyState.ACTIVE)
    old_next = next(k.kid for k in ring if k.alg == "Ed25519" and k.state is KeyState.NEXT)
    assert unverified(before.access)[0]["kid"] == old_active

    promoted = await op.provider.keys.rotate()

    assert old_next in promoted
    published = {jwk["kid"] for jwk in (await op.rp.get("/oauth2/jwks")).json()["keys"]}
    states = {k.kid: k.state for k in await op.provider.keys.keys()}
    assert states[old_active] is KeyState.RETIRED and old_active in published
    assert states[old_next] is KeyState.ACTIVE
    new_next = [kid for kid, s in states.items() if s is KeyState.NEXT and kid.startswith("ed25519")]
    assert len(new_next) == 1 and new_next[0] in published

    after = await op.tokens(rp)
    assert unverified(after.access)[0]["kid"] == old_next
    assert unverified(after.id_token)[0]["kid"] == old_next
    keys = await op.jwks()
    verify(before.access, keys, "Ed25519")
    verify(after.access, keys, "Ed25519")
    # tokens signed before the rotation keep working until they expire
    assert (await op.userinfo(before.access)).status_code == 200
    assert (await op.userinfo(after.access)).status_code == 200
    refreshed = await op.refresh(rp, before.refresh)
    assert refreshed.status_code == 200
    assert unverified(refreshed.json()["access_token"])[0]["kid"] == old_next
