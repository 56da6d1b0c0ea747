"""Authlib's OAuth 2.0 client (httpx integration) as the relying party, with Authlib's own JOSE.

The ID token is verified with `authlib.jose`, Authlib's JOSE implementation, rather than joserfc
(which Threshold signs with), so the check is independent of the signer. `authlib.jose` knows Ed25519
only under the old name `EdDSA` (not the RFC 9864 `Ed25519`), so these clients use ES256 and RS256.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from authlib.deprecate import AuthlibDeprecationWarning  # its import installs an "always" filter

from tests.interop.conftest import REDIRECT_URI, SCOPE, Provider, RegisteredClient, User, authorize_in_browser

with warnings.catch_warnings():
    # Authlib 1.9 deprecates authlib.jose (for joserfc) and plain httpx (for httpx2); both stay until 2.0.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError
    from authlib.jose import JsonWebKey, JsonWebToken, JWTClaims
    from authlib.oidc.core.util import create_half_hash

pytestmark = pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning")


def verify_id_token(
    id_token: str,
    *,
    jwks: dict[str, Any],
    expected_alg: str,
    expected_issuer: str,
    expected_audience: str,
    expected_nonce: str | None,
    access_token: str,
) -> JWTClaims:
    """Signature (only the client's registered alg), iss, aud, exp, iat, nonce and at_hash, by Authlib."""
    options: dict[str, dict[str, Any]] = {
        "iss": {"essential": True, "value": expected_issuer},
        "aud": {"essential": True, "value": expected_audience},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    if expected_nonce is not None:
        options["nonce"] = {"essential": True, "value": expected_nonce}
    claims: JWTClaims = JsonWebToken([expected_alg]).decode(
        id_token, JsonWebKey.import_key_set(jwks), claims_options=options
    )
    claims.validate(leeway=5)
    assert claims.header["alg"] == expected_alg
    assert claims["auth_time"] <= time.time() + 5
    if claims.get("azp") is not None:
        assert claims["azp"] == expected_audience
    # OIDC Core 3.1.3.8: at_hash is the left half of the access token's hash with the alg's hash.
    assert claims["at_hash"] == create_half_hash(access_token, expected_alg).decode()
    return claims


@pytest.mark.parametrize(
    ("signing_alg", "auth_method"),
    [
        ("ES256", "client_secret_basic"),
        ("RS256", "client_secret_post"),
        ("ES256", "none"),
    ],
)
def test_code_pkce_id_token_userinfo_refresh(
    provider: Provider, user: User, signing_alg: str, auth_method: str
) -> None:
    registered: RegisteredClient = provider.register_client(signing_alg=signing_alg, auth_method=auth_method)
    with OAuth2Client(
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        token_endpoint_auth_method=auth_method,
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=30,
    ) as oauth:
        discovery = oauth.request(
            "GET", provider.issuer + "/.well-known/openid-configuration", withhold_token=True
        )
        assert discovery.status_code == 200
        metadata: dict[str, Any] = discovery.json()
        assert metadata["issuer"] == provider.issuer
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert signing_alg in metadata["id_token_signing_alg_values_supported"]
        assert auth_method in metadata["token_endpoint_auth_methods_supported"]

        code_verifier = generate_token(64)
        nonce = generate_token(24)
        authorization_url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
        )
        assert "code_challenge_method=S256" in authorization_url
        callback = authorize_in_browser(provider, user, authorization_url)

        # Authlib checks `state` against the callback's before it redeems the code.
        token = oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        assert token["token_type"].lower() == "bearer"
        assert set(token["scope"].split()) == set(SCOPE.split())
        assert 0 < token["expires_in"] <= 900

        jwks = oauth.request("GET", metadata["jwks_uri"], withhold_token=True).json()
        claims = verify_id_token(
            token["id_token"],
            jwks=jwks,
            expected_alg=signing_alg,
            expected_issuer=provider.issuer,
            expected_audience=registered.client_id,
            expected_nonce=nonce,
            access_token=token["access_token"],
        )

        userinfo = oauth.get(metadata["userinfo_endpoint"])  # OAuth2Client adds the bearer token
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["sub"] == claims["sub"]
        assert userinfo.json()["email"] == user.email

        first_refresh_token = token["refresh_token"]
        refreshed = oauth.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh_token)
        assert refreshed["refresh_token"] != first_refresh_token
        assert refreshed["access_token"] != token["access_token"]
        if "id_token" in refreshed:  # OIDC Core 12.2: same iss, sub, aud and auth_time; no nonce needed
            renewed = verify_id_token(
                refreshed["id_token"],
                jwks=jwks,
                expected_alg=signing_alg,
                expected_issuer=provider.issuer,
                expected_audience=registered.client_id,
                expected_nonce=None,
                access_token=refreshed["access_token"],
            )
            assert renewed["sub"] == claims["sub"]
            assert renewed["auth_time"] == claims["auth_time"]

        again = oauth.get(metadata["userinfo_endpoint"])  # now with the refreshed access token
        assert again.status_code == 200, again.text
        assert again.json()["sub"] == claims["sub"]

        with pytest.raises(OAuthError) as reused:
            oauth.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh_token)
        assert reused.value.error == "invalid_grant"
