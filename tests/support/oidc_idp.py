"""A small but real OpenID Provider for the upstream-SSO tests, served by uvicorn on loopback.

It speaks the protocol for real (discovery, JWKS, authorization code with PKCE S256, client
authentication, RS256 ID tokens signed with joserfc, userinfo) and lets a test script what it asserts
next: the claims of the person who "signs in", a wrong nonce or audience, an issuer template with a
tenant (Microsoft's multi-tenant shape), a key rotation. The other upstream IdP of the suites is a
second Threshold process (tests/blackbox), which is not scriptable this way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.environment import free_port
from tests.support.threaded import ThreadedServer

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class _Grant:
    claims: dict[str, Any]
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str


@dataclass
class ScriptedIdp:
    """`issuer` is the URL it answers as; with `tenant_template`, discovery publishes
    `{base}/{tenantid}/v2.0` as the issuer and tokens carry `tid` (Microsoft Entra's multi-tenant form)."""

    client_id: str = "threshold-sp"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tenant_template: bool = False
    port: int = field(default_factory=free_port)
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    next_claims: dict[str, Any] = field(default_factory=dict)
    """Claims of the next sign-in (sub, email, email_verified, amr, acr, sid, groups, tid...)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Claims forced into the next ID token after the normal ones (a wrong nonce, aud, iss, exp...)."""
    header_alg: str = "RS256"
    published: RSAKey | None = None
    """The key the JWKS shows, when it is not the signing key (a token signed by a key never published)."""
    codes: dict[str, _Grant] = field(default_factory=dict)
    token_requests: int = 0
    _server: ThreadedServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """What a connection is configured with."""
        return f"{self.base}/{{tenantid}}/v2.0" if self.tenant_template else self.base

    def issuer_for(self, tid: str | None) -> str:
        return f"{self.base}/{tid}/v2.0" if self.tenant_template else self.base

    @property
    def discovery_base(self) -> str:
        return f"{self.base}/organizations/v2.0" if self.tenant_template else self.base

    # --- protocol endpoints ---------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token",
                "jwks_uri": f"{self.base}/jwks",
                "userinfo_endpoint": f"{self.base}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [(self.published or self.key).as_dict(private=False)]})

    async def _authorize(self, request: Request) -> Response:
        """The person signs in at once as `next_claims` (a test drives no login form here)."""
        q = request.query_params
        assert q.get("response_type") == "code", q
        assert q.get("code_challenge_method") == "S256", q
        assert q.get("client_id") == self.client_id, q
        assert q.get("nonce") and q.get("state"), q
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Grant(
            claims=dict(self.next_claims),
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            challenge=q["code_challenge"],
            nonce=q["nonce"],
        )
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer_for(grant.claims.get("tid")),
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.claims,
            **self.overrides,
        }
        id_token = self.sign(claims)
        return JSONResponse(
            {"access_token": "at-" + secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token},
            headers={"Cache-Control": "no-store"},
        )

    async def _userinfo(self, request: Request) -> Response:
        return JSONResponse({"sub": self.next_claims.get("sub", "")})

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        if self.header_alg == "none":  # an unsigned token, as an attacker would send it

            def part(value: dict[str, Any]) -> str:
                return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

            return f"{part({'alg': 'none', 'typ': typ})}.{part(claims)}."
        return jwt.encode({"alg": self.header_alg, "kid": self.key.kid, "typ": typ}, claims, self.key)

    def logout_token(self, **claims: Any) -> str:
        """A back-channel logout token (OpenID Connect Back-Channel Logout 1.0, section 2.4)."""
        now = int(time.time())
        body = {
            "iss": self.issuer_for(claims.get("tid")),
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(12),
            "events": {BACKCHANNEL_EVENT: {}},
            **claims,
        }
        return self.sign(body, typ="logout+jwt")

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> ScriptedIdp:
        prefix = "/organizations/v2.0" if self.tenant_template else ""
        app = Starlette(
            routes=[
                Route(f"{prefix}/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )
        self._server = ThreadedServer(app, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
