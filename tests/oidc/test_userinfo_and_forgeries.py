"""Userinfo (OIDC Core 5.3) and forged or unusable access tokens at userinfo and introspection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.conftest import ISSUER
from tests.oidc.helpers import OP, RP, b64url, b64url_json, bearer_challenge, invalid_token, unverified


async def test_userinfo_returns_sub_and_with_email_scope_the_email(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp, scope="openid email")

    response = await op.userinfo(tokens.access)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "sub": account["user"]["id"],
        "email": account["user"]["email"],
        "email_verified": False,
    }
    assert response.json()["sub"] == unverified(tokens.id_token)[1]["sub"]


async def test_userinfo_without_email_scope_has_only_sub(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp, scope="openid")

    response = await op.userinfo(tokens.access)

    assert response.status_code == 200
    assert response.json() == {"sub": account["user"]["id"]}


async def test_userinfo_accepts_the_token_in_a_post_form(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)

    by_form = await op.rp.post("/oauth2/userinfo", data={"access_token": tokens.access})
    by_header = await op.rp.post("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens.access}"})

    assert by_form.status_code == 200, by_form.text
    assert by_form.json()["sub"] == account["user"]["id"]
    assert by_header.status_code == 200 and by_header.json() == by_form.json()
    invalid_token(await op.rp.post("/oauth2/userinfo", data={"access_token": "garbage"}))
    bearer_challenge(await op.rp.post("/oauth2/userinfo"))


def _hs256(header: dict[str, object], payload: dict[str, object], secret: bytes) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def _forgeries(op: OP, rp: RP, genuine: str, rs_genuine: str) -> dict[str, str]:
    """Tokens an attacker could make from a genuine one and the public JWKS."""
    header, payload = unverified(genuine)
    kid = header["kid"]
    published = {jwk["kid"]: jwk for jwk in (await op.rp.get("/oauth2/jwks")).json()["keys"]}
    h, p, s = genuine.split(".")
    victim = {**payload, "sub": "someone-else"}
    forged: dict[str, str] = {
        "garbage": "not-a-token",
        "garbage-three-parts": "abc.def.ghi",
        "empty-signature": f"{h}.{p}.",
        "alg-none": f"{b64url_json({**header, 'alg': 'none'})}.{p}.",
        "alg-none-no-kid": f"{b64url_json({'alg': 'none', 'typ': 'at+jwt'})}.{p}.",
        "tampered-payload": f"{h}.{b64url_json(victim)}.{s}",
        "tampered-scope": f"{h}.{b64url_json({**payload, 'scope': 'openid email admin'})}.{s}",
        "tampered-header": f"{b64url_json({**header, 'typ': 'JWT'})}.{p}.{s}",
        "signature-of-another-token": f"{h}.{p}.{rs_genuine.split('.')[2]}",
        "unknown-kid": f"{b64url_json({**header, 'kid': 'nope'})}.{p}.{s}",
    }
    # key confusion: HS256 keyed with the published public key, in every form an attacker might try
    ed_jwk = published[kid]
    rs_header, rs_payload = unverified(rs_genuine)
    rs_jwk = published[rs_header["kid"]]
    rs_pem = RSAKey.import_key(rs_jwk).as_pem(private=False)
    confusion_secrets = {
        "hs256-public-jwk-json": json.dumps(ed_jwk).encode(),
        "hs256-public-x": ed_jwk["x"].encode(),
        "hs256-public-x-raw": base64.urlsafe_b64decode(ed_jwk["x"] + "=="),
    }
    for name, secret in confusion_secrets.items():
        forged[name] = _hs256({**header, "alg": "HS256"}, victim, secret)
    forged["hs256-rsa-public-pem"] = _hs256({**rs_header, "alg": "HS256"}, rs_payload, rs_pem)
    # another issuer's key, published under the same kid
    foreign = OKPKey.generate_key("Ed25519", parameters={"kid": kid})
    for name, iss in (
        ("foreign-key-other-issuer", "https://evil.example"),
        ("foreign-key-our-issuer", ISSUER),
    ):
        forged[name] = jwt.encode({**header}, {**payload, "iss": iss}, foreign, algorithms=["Ed25519"])
    # header tricks pointing at the attacker's keys
    attacker = ECKey.generate_key("P-256", parameters={"kid": "attacker-1"})
    for name, extra in (
        ("jku-attacker-kid", {"jku": "https://evil.example/jwks.json", "kid": "attacker-1"}),
        ("x5u-attacker-kid", {"x5u": "https://evil.example/cert.pem", "kid": "attacker-1"}),
        ("jku-our-kid", {"jku": "https://evil.example/jwks.json", "kid": rs_header["kid"]}),
        ("jwk-embedded", {"jwk": attacker.as_dict(private=False), "kid": "attacker-1"}),
    ):
        forged[name] = jwt.encode(
            {"typ": "at+jwt", "alg": "ES256", **extra}, payload, attacker, algorithms=["ES256"]
        )
    # a genuine token of ours that is not an access token
    forged["id-token-as-access-token"] = (await op.tokens(rp)).id_token
    return forged


async def test_forged_and_unusable_tokens_are_refused_at_userinfo_and_inactive_at_introspection(
    op: OP,
) -> None:
    rp = await op.register()
    rs = await op.register(signing_alg="RS256")
    await op.sign_up()
    genuine = (await op.tokens(rp)).access
    rs_genuine = (await op.tokens(rs)).access
    forged = await _forgeries(op, rp, genuine, rs_genuine)
    assert (await op.userinfo(genuine)).status_code == 200
    assert (await op.introspect(rp, genuine)).json()["active"] is True

    for name, token in forged.items():
        response = await op.userinfo(token)
        assert response.status_code == 401, (name, response.status_code, response.text)
        invalid_token(response)
        introspected = await op.introspect(rp, token)
        assert introspected.status_code == 200, (name, introspected.text)
        assert introspected.json() == {"active": False}, name


async def test_a_client_credentials_token_has_no_user_for_userinfo(op: OP) -> None:
    rp = await op.register()
    cc = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    token = (await op.token(cc, {"grant_type": "client_credentials"})).json()["access_token"]

    invalid_token(await op.userinfo(token))
    # it is a valid token all the same, for the APIs it was meant for
    assert (await op.introspect(rp, token)).json()["active"] is True


async def test_no_token_is_401_with_a_bearer_challenge(op: OP) -> None:
    response = await op.rp.get("/oauth2/userinfo")

    bearer_challenge(response)
    assert "Authorization: Bearer" in response.json()["error_description"]
    bearer_challenge(await op.rp.get("/oauth2/userinfo", headers={"Authorization": "Basic Zm9vOmJhcg=="}))
    invalid_token(await op.rp.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + "a" * 10000}))


async def test_an_expired_access_token_is_refused(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    assert (await op.userinfo(tokens.access)).status_code == 200

    op.clock.advance(300 + 60)

    invalid_token(await op.userinfo(tokens.access))
    assert (await op.introspect(rp, tokens.access)).json() == {"active": False}
