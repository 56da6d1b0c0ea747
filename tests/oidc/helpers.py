"""Helpers of the OIDC suite: a relying party's view of the provider (PKCE, flows, JWT checks)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.api.helpers import SESSION_COOKIE, FakeClock
from tests.conftest import ISSUER, csrf, signup, unique_email
from threshold.oidc.provider import Provider
from threshold.services import Services

REDIRECT_URI = "https://rp.example/callback"
LOGOUT_URI = "https://rp.example/signed-out"
TOKEN_ENDPOINT = f"{ISSUER}/oauth2/token"
DEFAULT_SCOPE = "openid email offline_access"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), computed here rather than with the provider's code."""
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, without checking anything."""
    header, payload, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload))


def expected_at_hash(access_token: str, alg: str) -> str:
    """OIDC Core 3.1.3.6: left half of the hash of the JWS algorithm (SHA-512 for Ed25519)."""
    hashed = (hashlib.sha512 if alg == "Ed25519" else hashlib.sha256)(access_token.encode()).digest()
    return b64url(hashed[: len(hashed) // 2])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def redirected(response: httpx.Response, to: str = REDIRECT_URI) -> dict[str, str]:
    """The query parameters of a 303 to `to` (exact base), asserting that is what happened."""
    assert response.status_code == 303, (response.status_code, response.text[:500])
    location = response.headers["location"]
    assert location.split("?")[0] == to, location
    return query_of(location)


def not_redirected(response: httpx.Response, status: int = 400) -> None:
    """An error page: no redirect anywhere, HTML."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def hidden_inputs(page: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'\bname="([^"]*)"', tag)
        value = re.search(r'\bvalue="([^"]*)"', tag)
        if name:
            values[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    return values


def oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 section 5.2 error body, not cached."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert response.headers.get("cache-control") == "no-store"
    return body


def bearer_challenge(response: httpx.Response) -> None:
    """RFC 6750 section 3.1: no credentials at all get a Bearer challenge without an error code."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="threshold"'


def invalid_token(response: httpx.Response) -> None:
    """RFC 6750 section 3.1: 401 with a Bearer challenge naming invalid_token."""
    oauth_error(response, 401, "invalid_token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge


def verify(token: str, keys: KeySet, alg: str) -> dict[str, Any]:
    """Verify a JWS against the published keys with one allowed algorithm; return its claims."""
    decoded = jwt.decode(token, keys, algorithms=[alg])
    assert decoded.header["alg"] == alg
    return dict(decoded.claims)


@dataclass
class RP:
    """A registered relying party and how it authenticates at the token endpoint."""

    client_id: str
    secret: str | None
    method: str
    signing_alg: str
    redirect_uri: str = REDIRECT_URI
    sign_assertion: Callable[[], str] | None = None

    def credentials(self, data: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form) with this client's authentication added."""
        headers: dict[str, str] = {}
        form = dict(data)
        if self.method == "client_secret_basic":
            assert self.secret
            raw = f"{self.client_id}:{self.secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif self.method == "client_secret_post":
            assert self.secret
            form.update(client_id=self.client_id, client_secret=self.secret)
        elif self.method == "private_key_jwt":
            assert self.sign_assertion
            form.update(
                client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                client_assertion=self.sign_assertion(),
            )
        else:
            form["client_id"] = self.client_id
        return headers, form


@dataclass
class Tokens:
    body: dict[str, Any]
    verifier: str
    nonce: str

    @property
    def access(self) -> str:
        return str(self.body["access_token"])

    @property
    def refresh(self) -> str:
        return str(self.body["refresh_token"])

    @property
    def id_token(self) -> str:
        return str(self.body["id_token"])


@dataclass
class OP:
    """The provider in-process: a browser (cookie jar) and a relying party's back channel (no cookies)."""

    browser: httpx.AsyncClient
    rp: httpx.AsyncClient
    services: Services
    clock: FakeClock
    new_client: Callable[[str], httpx.AsyncClient]
    others: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def provider(self) -> Provider:
        return self.services.provider

    async def close(self) -> None:
        for client in (self.browser, self.rp, *self.others):
            await client.aclose()

    def another_browser(self, ip: str = "192.0.2.55") -> httpx.AsyncClient:
        client = self.new_client(ip)
        self.others.append(client)
        return client

    # --- set-up ---------------------------------------------------------------------------------

    async def register(
        self,
        *,
        first_party: bool = True,
        public: bool = False,
        grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
        scopes: tuple[str, ...] = ("openid", "email", "offline_access"),
        method: str | None = None,
        signing_alg: str = "Ed25519",
        redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
        post_logout_redirect_uris: tuple[str, ...] = (LOGOUT_URI,),
        **extra: Any,
    ) -> RP:
        issued = await self.provider.create_client(
            name="Relying Party",
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            public=public,
            first_party=first_party,
            grant_types=grant_types,
            scopes=scopes,
            token_endpoint_auth_method=method,
            signing_alg=signing_alg,
            **extra,
        )
        client = issued.client
        return RP(
            client_id=client.client_id,
            secret=issued.secret,
            method=client.token_endpoint_auth_method.value,
            signing_alg=client.signing_alg,
            redirect_uri=redirect_uris[0] if redirect_uris else REDIRECT_URI,
        )

    async def sign_up(self, browser: httpx.AsyncClient | None = None) -> dict[str, Any]:
        """A new account signed in on `browser`; returns {"user": ..., "session": ...}."""
        response = await signup(browser or self.browser, unique_email("oidc"))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def session_cookie(self, browser: httpx.AsyncClient | None = None) -> str:
        value = (browser or self.browser).cookies.get(SESSION_COOKIE)
        assert value
        return value

    async def signed_in(self, browser: httpx.AsyncClient | None = None) -> bool:
        response = await (browser or self.browser).get("/api/v1/session")
        assert response.status_code in (200, 401), response.text
        return response.status_code == 200

    # --- authorization endpoint -----------------------------------------------------------------

    @staticmethod
    def authorize_params(rp: RP, challenge: str, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "client_id": rp.client_id,
            "redirect_uri": rp.redirect_uri,
            "response_type": "code",
            "scope": DEFAULT_SCOPE,
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    async def authorize(
        self, params: dict[str, str], browser: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        return await (browser or self.browser).get("/oauth2/authorize", params=params)

    async def code(
        self, rp: RP, browser: httpx.AsyncClient | None = None, **overrides: str | None
    ) -> tuple[str, str, dict[str, str]]:
        """(code, code_verifier, authorization params) for a signed-in browser that needs no consent."""
        verifier, challenge = pkce()
        params = self.authorize_params(rp, challenge, **overrides)
        returned = redirected(await self.authorize(params, browser), rp.redirect_uri)
        assert returned["state"] == params["state"]
        assert returned["iss"] == ISSUER
        return returned["code"], verifier, params

    async def consent(
        self, page: httpx.Response, decision: str, browser: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """Submit the consent page as the browser would (same origin, its CSRF field)."""
        assert page.status_code == 200, page.text[:300]
        assert 'action="/consent"' in page.text
        form = {**hidden_inputs(page.text), "decision": decision}
        assert form.get("csrf_token")
        return await (browser or self.browser).post("/consent", data=form, headers={"Origin": ISSUER})

    # --- token endpoint and friends --------------------------------------------------------------

    async def post(
        self, path: str, rp: RP | None, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent_headers, form = rp.credentials(data) if rp else ({}, dict(data))
        sent_headers.update(headers or {})
        return await self.rp.post(path, data=form, headers=sent_headers)

    async def token(self, rp: RP | None, data: dict[str, str]) -> httpx.Response:
        return await self.post("/oauth2/token", rp, data)

    async def exchange(self, rp: RP, code: str, verifier: str, **extra: str) -> httpx.Response:
        return await self.token(
            rp,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": rp.redirect_uri,
                "code_verifier": verifier,
                **extra,
            },
        )

    async def tokens(
        self, rp: RP, browser: httpx.AsyncClient | None = None, **overrides: str | None
    ) -> Tokens:
        """The whole code + PKCE flow for a signed-in browser; returns the token response."""
        code, verifier, params = await self.code(rp, browser, **overrides)
        response = await self.exchange(rp, code, verifier)
        assert response.status_code == 200, response.text
        return Tokens(body=response.json(), verifier=verifier, nonce=params.get("nonce", ""))

    async def refresh(self, rp: RP, refresh_token: str, **extra: str) -> httpx.Response:
        return await self.token(rp, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})

    async def userinfo(self, access_token: str) -> httpx.Response:
        return await self.rp.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})

    async def introspect(self, rp: RP, token: str, **extra: str) -> httpx.Response:
        return await self.post("/oauth2/introspect", rp, {"token": token, **extra})

    async def revoke(self, rp: RP, token: str, **extra: str) -> httpx.Response:
        return await self.post("/oauth2/revoke", rp, {"token": token, **extra})

    async def jwks(self) -> KeySet:
        response = await self.rp.get("/oauth2/jwks")
        assert response.status_code == 200
        return KeySet.import_key_set(response.json())

    async def browser_csrf(self, browser: httpx.AsyncClient | None = None) -> str:
        return await csrf(browser or self.browser)
