"""Keys of our own and a hand-made JWS builder, so a test can forge exactly the token it needs.

`forge` never goes through a JOSE library's encoder: that would refuse (or fix up) the very headers
and algorithms the verifier must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from threshold.client import TokenVerifier

ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
ALGORITHMS = ("Ed25519", "ES256", "RS256")
_REGISTRY = JWSRegistry(algorithms=list(ALGORITHMS))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    key: ECKey | RSAKey | OKPKey

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.key.as_pem(private=False)


def generate(alg: str, kid: str) -> SigningKey:
    if alg == "Ed25519":
        return SigningKey(alg, kid, OKPKey.generate_key("Ed25519"))
    if alg == "ES256":
        return SigningKey(alg, kid, ECKey.generate_key("P-256"))
    return SigningKey(alg, kid, RSAKey.generate_key(2048))


def jwks(*keys: SigningKey, with_alg: bool = True) -> dict[str, Any]:
    return {"keys": [k.public_jwk(with_alg=with_alg) for k in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    """RFC 9068 access-token claims, valid now; `name=None` removes a claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-123",
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "client_id": "client-abc",
        "scope": "openid api:read api:write",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def forge(
    header: dict[str, Any],
    payload: dict[str, Any] | bytes,
    *,
    key: SigningKey | None = None,
    alg: str | None = None,
    hmac_secret: bytes | None = None,
) -> str:
    """A compact JWS with exactly `header` and `payload`, signed by `key` (with `alg`), or by HMAC-SHA256
    with `hmac_secret`, or not at all."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64json(header)}.{b64(body)}".encode("ascii")
    if hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input, hashlib.sha256).digest()
    elif key is not None:
        signature = _REGISTRY.get_alg(alg or key.alg).sign(signing_input, key.key)
    else:
        signature = b""
    return f"{signing_input.decode('ascii')}.{b64(signature)}"


def access_token(key: SigningKey, *, header: dict[str, Any] | None = None, **claim_overrides: Any) -> str:
    """A well-formed at+jwt signed by `key`; `header` entries are added to (or replace) the usual ones."""
    full = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **(header or {})}
    return forge({k: v for k, v in full.items() if v is not None}, claims(**claim_overrides), key=key)


def verifier_for(*keys: SigningKey, **options: Any) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(*keys), **options)
