"""Clients, tokens and a signed-in user's access token (authorization code + PKCE) for the admin suite."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from threshold.oidc.provider import ADMIN_SCOPE, IssuedClient
from threshold.services import Services

REDIRECT_URI = "https://app.example.test/callback"


def services_of(client: httpx.AsyncClient) -> Services:
    services: Services = client.services  # type: ignore[attr-defined]
    return services


async def register(client: httpx.AsyncClient, **options: Any) -> IssuedClient:
    return await services_of(client).provider.create_client(**options)


async def register_service(client: httpx.AsyncClient, *scopes: str) -> IssuedClient:
    return await register(client, name="svc", grant_types=["client_credentials"], scopes=list(scopes))


async def client_credentials(
    client: httpx.AsyncClient, issued: IssuedClient, scope: str | None = None
) -> httpx.Response:
    """POST /oauth2/token, client_credentials with HTTP Basic (client_secret_basic)."""
    assert issued.secret is not None
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return await client.post("/oauth2/token", data=data, auth=(issued.client.client_id, issued.secret))


async def service_token(client: httpx.AsyncClient, issued: IssuedClient, scope: str | None = None) -> str:
    response = await client_credentials(client, issued, scope)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Admin:
    """An operator's service: a client_credentials client with threshold:admin, and its token."""

    http: httpx.AsyncClient
    issued: IssuedClient
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(f"/admin/v1{path}", headers=self.headers)

    async def post(self, path: str, json: Any = None) -> httpx.Response:
        return await self.http.post(f"/admin/v1{path}", json=json, headers=self.headers)

    async def patch(self, path: str, json: Any = None) -> httpx.Response:
        return await self.http.patch(f"/admin/v1{path}", json=json, headers=self.headers)

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(f"/admin/v1{path}", headers=self.headers)


async def make_admin(client: httpx.AsyncClient) -> Admin:
    issued = await register_service(client, ADMIN_SCOPE)
    return Admin(client, issued, await service_token(client, issued))


async def user_access_token(browser: httpx.AsyncClient, app: IssuedClient, scope: str) -> dict[str, Any]:
    """The signed-in `browser` authorizes `app` (code + PKCE S256); the app redeems the code.

    Returns the token response."""
    assert app.secret is not None
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(12)
    response = await browser.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": app.client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state], params
    token = await browser.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(app.client.client_id, app.secret),
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body
