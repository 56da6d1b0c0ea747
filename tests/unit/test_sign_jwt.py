"""`sign_jwt` is joserfc's `jwt.encode` without its per-call checks: the same bytes for the deterministic
algorithms (Ed25519, RS256), the same header and payload segments and a valid signature for ES256."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt

from threshold.oidc.keys import generate_jwk
from threshold.oidc.models import SIGNING_ALGORITHMS
from threshold.oidc.tokens import _registry, sign_jwt

CLAIMS: list[dict[str, Any]] = [
    {},
    {"iss": "https://auth.example", "sub": "u_1", "aud": "api", "exp": 1_800_000_300, "iat": 1_800_000_000},
    {"aud": ["a", "b"], "scope": "openid email", "nested": {"x": [1, 2, {"y": None}]}, "flag": True},
    {"name": "Zoë Ünal 名前 ٱلْعَرَبِيَّة", "emoji": "🔑", "quote": 'a"b\\c</script>', "n": 1.5},
]
TYPES = ["at+jwt", "JWT", "logout+jwt"]


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
@pytest.mark.parametrize("typ", TYPES)
@pytest.mark.parametrize("claims", CLAIMS)
def test_sign_jwt_matches_joserfc(alg: str, typ: str, claims: dict[str, Any]) -> None:
    key = generate_jwk(alg, "kid-1")
    ours = sign_jwt(alg, "kid-1", typ, claims, key)
    theirs = jwt.encode({"alg": alg, "kid": "kid-1", "typ": typ}, dict(claims), key, registry=_registry(alg))
    if alg == "ES256":  # ECDSA signatures are randomized: the signed segments match, both verify
        assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    else:
        assert ours == theirs
    decoded = jwt.decode(ours, key, registry=_registry(alg))
    assert decoded.header == {"alg": alg, "kid": "kid-1", "typ": typ}
    assert decoded.claims == claims


def test_the_header_follows_the_key_id_and_the_key_signs() -> None:
    first, second = generate_jwk("Ed25519", "kid-a"), generate_jwk("Ed25519", "kid-b")
    a = sign_jwt("Ed25519", "kid-a", "at+jwt", {"n": 1}, first)
    b = sign_jwt("Ed25519", "kid-b", "at+jwt", {"n": 1}, second)
    assert jwt.decode(a, first, registry=_registry("Ed25519")).header["kid"] == "kid-a"
    assert jwt.decode(b, second, registry=_registry("Ed25519")).header["kid"] == "kid-b"
    with pytest.raises(Exception, match="signature"):
        jwt.decode(b, first, registry=_registry("Ed25519"))
