"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9, RFC 7523) and bad input."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from tests.conftest import ISSUER
from tests.oidc.helpers import OP, RP, TOKEN_ENDPOINT, oauth_error

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def invalid_client(response: Any) -> None:
    oauth_error(response, 401, "invalid_client")
    assert response.headers.get("www-authenticate"), "401 without a WWW-Authenticate challenge"


async def _jwt_client(op: OP) -> tuple[RP, ECKey]:
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-key-1", "alg": "ES256", "use": "sig"})
    rp = await op.register(
        method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=("client_credentials",),
        scopes=("api:read",),
        redirect_uris=(),
    )
    return rp, key


def assertion(key: ECKey, client_id: str, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


def cc_form(token: str, client_id: str | None = None) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": token,
    }
    if client_id:
        form["client_id"] = client_id
    return form


async def test_client_secret_basic(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)

    response = await op.exchange(rp, code, verifier)

    assert response.status_code == 200, response.text


async def test_client_secret_basic_with_form_urlencoded_credentials(op: OP) -> None:
    """RFC 6749 2.3.1: the id and secret are form-urlencoded before base64."""
    rp = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    assert rp.secret
    encoded = rp.secret.replace("-", "%2D")

    response = await op.rp.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(rp.client_id, encoded)
    )

    assert response.status_code == 200, response.text


async def test_a_client_with_a_secret_may_present_it_either_way(op: OP) -> None:
    """RFC 6749 2.3.1: openid-client sends client_secret_post by default, Authlib client_secret_basic."""
    for registered in ("client_secret_post", "client_secret_basic"):
        rp = await op.register(method=registered)
        await op.sign_up()
        code, verifier, _ = await op.code(rp)
        response = await op.exchange(rp, code, verifier)
        assert response.status_code == 200, response.text
        assert rp.secret
        in_header = await op.rp.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
            headers=basic(rp.client_id, rp.secret),
        )
        assert in_header.status_code == 200, (registered, in_header.text)
        in_form = await op.rp.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": in_header.json()["refresh_token"],
                "client_id": rp.client_id,
                "client_secret": rp.secret,
            },
        )
        assert in_form.status_code == 200, (registered, in_form.text)
        wrong = await op.rp.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": in_form.json()["refresh_token"],
                "client_id": rp.client_id,
                "client_secret": "wrong-" + secrets.token_urlsafe(20),
            },
        )
        invalid_client(wrong)
        assert "wrong client_secret" in wrong.json()["error_description"]


async def test_when_the_method_is_wrong_the_error_names_the_right_one(op: OP) -> None:
    secret_client = await op.register()
    jwt_client, _ = await _jwt_client(op)

    no_secret = await op.rp.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": secret_client.client_id}
    )
    secret_for_jwt = await op.rp.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": jwt_client.client_id, "client_secret": "x"},
    )

    invalid_client(no_secret)
    assert "client_secret_basic" in no_secret.json()["error_description"]
    assert "client_secret_post" in no_secret.json()["error_description"]
    assert "the request used no credentials" in no_secret.json()["error_description"]
    invalid_client(secret_for_jwt)
    assert "private_key_jwt" in secret_for_jwt.json()["error_description"]
    assert "client_secret_post" in secret_for_jwt.json()["error_description"]


async def test_private_key_jwt_and_a_replayed_assertion_is_refused(op: OP) -> None:
    rp, key = await _jwt_client(op)
    signed = assertion(key, rp.client_id)

    first = await op.rp.post("/oauth2/token", data=cc_form(signed))
    replay = await op.rp.post("/oauth2/token", data=cc_form(signed))

    assert first.status_code == 200, first.text
    assert first.json()["scope"] == "api:read"
    invalid_client(replay)
    # a fresh assertion (new jti) works again, also with client_id sent alongside
    again = await op.rp.post("/oauth2/token", data=cc_form(assertion(key, rp.client_id), rp.client_id))
    assert again.status_code == 200, again.text


async def test_private_key_jwt_rejects_bad_assertions(op: OP) -> None:
    rp, key = await _jwt_client(op)
    now = int(time.time())
    cases: dict[str, dict[str, Any]] = {
        "aud": {"aud": "https://evil.example/token"},
        "iss": {"iss": "someone-else"},
        "sub": {"sub": "someone-else"},
        "expired": {"exp": now - 3600},
        "no-exp": {"exp": None},
        "no-jti": {"jti": None},
        "too-long": {"exp": now + 86400},
    }

    for name, overrides in cases.items():
        response = await op.rp.post("/oauth2/token", data=cc_form(assertion(key, rp.client_id, **overrides)))
        assert response.status_code == 401, name
        invalid_client(response)


async def test_private_key_jwt_rejects_a_foreign_key_and_alg_none(op: OP) -> None:
    rp, key = await _jwt_client(op)
    foreign = ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"})
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    genuine = assertion(key, rp.client_id)
    unsigned = header + "." + genuine.split(".")[1] + "."

    invalid_client(await op.rp.post("/oauth2/token", data=cc_form(assertion(foreign, rp.client_id))))
    invalid_client(await op.rp.post("/oauth2/token", data=cc_form(unsigned, rp.client_id)))


async def test_private_key_jwt_client_cannot_use_a_secret(op: OP) -> None:
    rp, _ = await _jwt_client(op)

    invalid_client(
        await op.rp.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": rp.client_id, "client_secret": "guess"},
        )
    )


async def test_public_client_authenticates_with_none_and_still_needs_pkce(op: OP) -> None:
    rp = await op.register(public=True)
    assert rp.secret is None and rp.method == "none"
    await op.sign_up()
    code, verifier, _ = await op.code(rp)

    without_verifier = await op.token(
        rp, {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    )
    oauth_error(without_verifier, 400, "invalid_grant")
    code, verifier, _ = await op.code(rp)
    response = await op.exchange(rp, code, verifier)

    assert response.status_code == 200, response.text
    assert (await op.refresh(rp, response.json()["refresh_token"])).status_code == 200


async def test_confidential_client_cannot_skip_authentication(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    code, verifier, _ = await op.code(rp)

    response = await op.rp.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier,
            "client_id": rp.client_id,
        },
    )

    invalid_client(response)


async def test_failed_client_authentication_is_401_invalid_client(op: OP) -> None:
    rp = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    cases = {
        "wrong-secret": basic(rp.client_id, "wrong-" + secrets.token_urlsafe(20)),
        "empty-secret": basic(rp.client_id, ""),
        "unknown-client": basic("nobody", rp.secret or ""),
        "no-credentials": {},
        "malformed-basic": {"Authorization": "Basic !!!not-base64!!!"},
        "basic-without-colon": {"Authorization": "Basic " + base64.b64encode(b"just-an-id").decode()},
    }

    for how, headers in cases.items():
        response = await op.rp.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, headers=headers
        )
        assert response.status_code == 401, how
        invalid_client(response)
        assert "access_token" not in response.json()


async def test_two_authentication_methods_at_once_is_invalid_request(op: OP) -> None:
    rp = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    assert rp.secret

    response = await op.rp.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": rp.client_id, "client_secret": rp.secret},
        headers=basic(rp.client_id, rp.secret),
    )

    oauth_error(response, 400, "invalid_request")


async def test_unsupported_grant_type(op: OP) -> None:
    rp = await op.register()

    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        oauth_error(await op.token(rp, {"grant_type": grant}), 400, "unsupported_grant_type")


async def test_a_grant_the_client_was_not_given_is_unauthorized_client(op: OP) -> None:
    rp = await op.register(grant_types=("authorization_code",))

    oauth_error(await op.token(rp, {"grant_type": "client_credentials"}), 400, "unauthorized_client")
    oauth_error(
        await op.token(rp, {"grant_type": "refresh_token", "refresh_token": "x" * 43}),
        400,
        "unauthorized_client",
    )


async def test_malformed_token_requests_get_rfc6749_errors_never_500(op: OP) -> None:
    rp = await op.register()
    assert rp.secret
    auth = basic(rp.client_id, rp.secret)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"json": {"grant_type": "client_credentials"}}, 400, "invalid_request"),
        (
            {"content": b"grant_type=client_credentials", "headers": {"Content-Type": "text/plain"}},
            400,
            "invalid_request",
        ),
        ({"files": {"grant_type": ("x", b"client_credentials")}}, 400, "invalid_request"),
        ({"data": {}}, 400, "invalid_request"),
        ({"data": {"grant_type": ""}}, 400, "invalid_request"),
        ({"content": b"grant_type=authorization_code&grant_type=refresh_token"}, 400, "invalid_request"),
        ({"data": {"grant_type": "authorization_code", "code": "c" * 20000}}, 400, "invalid_request"),
        ({"data": {"grant_type": "refresh_token", "refresh_token": "r" * 20000}}, 400, "invalid_request"),
        ({"data": {"grant_type": "x" * 20000}}, 400, "unsupported_grant_type"),
        ({"content": b"grant_type=authorization_code&code=%FF%FE%00&redirect_uri=%zz"}, 400, "invalid_grant"),
        ({"content": b"&".join(b"f%d=v" % i for i in range(2000))}, 400, "invalid_request"),
    ]
    for kwargs, status, error in cases:
        headers = {**auth, **kwargs.pop("headers", {})}
        if "content" in kwargs and "Content-Type" not in headers:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await op.rp.post("/oauth2/token", headers=headers, **kwargs)
        assert response.status_code < 500, (kwargs, response.text)
        oauth_error(response, status, error)


async def test_a_body_over_the_size_limit_is_refused_not_a_500(op: OP) -> None:
    rp = await op.register()
    assert rp.secret

    response = await op.rp.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "c" * 200_000},
        headers=basic(rp.client_id, rp.secret),
    )

    assert response.status_code == 413


async def test_token_endpoint_refuses_get(op: OP) -> None:
    response = await op.rp.get("/oauth2/token", params={"grant_type": "client_credentials"})

    assert response.status_code == 405


async def test_the_assertion_audience_is_the_issuer_as_one_string(op: OP) -> None:
    """RFC 10070 and OpenID Connect Core 1.0 errata set 2, section 9: aud is the issuer identifier."""
    rp, key = await _jwt_client(op)

    response = await op.rp.post("/oauth2/token", data=cc_form(assertion(key, rp.client_id, aud=ISSUER)))

    assert response.status_code == 200, response.text


async def test_the_token_endpoint_is_accepted_as_a_legacy_single_audience(op: OP) -> None:
    rp, key = await _jwt_client(op)

    response = await op.rp.post(
        "/oauth2/token", data=cc_form(assertion(key, rp.client_id, aud=TOKEN_ENDPOINT))
    )

    assert response.status_code == 200, response.text


async def test_an_audience_array_is_refused_whatever_it_holds(op: OP) -> None:
    """The private_key_jwt audience-injection advisory (2025): a client talked into signing an assertion
    for several audiences must not be impersonated with it here, so arrays are refused outright."""
    rp, key = await _jwt_client(op)

    for audience in (
        [ISSUER],
        [TOKEN_ENDPOINT],
        [ISSUER, TOKEN_ENDPOINT],
        [ISSUER, "https://evil.example"],
        ["https://evil.example/token", TOKEN_ENDPOINT],
        [],
    ):
        response = await op.rp.post("/oauth2/token", data=cc_form(assertion(key, rp.client_id, aud=audience)))
        assert response.status_code == 401, (audience, response.text)
        invalid_client(response)


async def test_other_endpoint_urls_are_not_an_assertion_audience(op: OP) -> None:
    rp, key = await _jwt_client(op)
    token = (
        await op.rp.post("/oauth2/token", data=cc_form(assertion(key, rp.client_id, aud=ISSUER)))
    ).json()["access_token"]

    for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
        for audience in (f"{ISSUER}/oauth2/introspect", f"{ISSUER}/oauth2/revoke", f"{ISSUER}/", ""):
            form = cc_form(assertion(key, rp.client_id, aud=audience))
            form.update(token=token)
            invalid_client(await op.rp.post(path, data=form))
    # the issuer (and the legacy token endpoint) authenticate at every endpoint
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        for audience in (ISSUER, TOKEN_ENDPOINT):
            form = {**cc_form(assertion(key, rp.client_id, aud=audience)), "token": token}
            form.pop("grant_type")
            response = await op.rp.post(path, data=form)
            assert response.status_code == 200, (path, audience, response.text)
