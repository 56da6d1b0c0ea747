"""SCIM 2.0 at `{issuer}/scim/v2`: the ASGI app in-process through httpx on both backends, and a real
server (uvicorn on a free port) where the test needs one (scim2-tester, concurrent creations)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ISSUER
from threshold.core.accounts import OPERATOR
from threshold.core.orgs.models import Organization
from threshold.core.scim.tokens import ScimTokens
from threshold.scim.wiring import scim_tokens
from threshold.services import Services

BASE = f"{ISSUER}/scim/v2"
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class ScimOrg:
    """An organization with a verified domain and a SCIM token, and an httpx client that sends it."""

    org: Organization
    domain: str
    token: str
    http: httpx.AsyncClient
    services: Services

    def address(self, local: str | None = None) -> str:
        return f"{local or 'p' + secrets.token_hex(4)}@{self.domain}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, f"/scim/v2{path}", headers=headers, **kwargs)

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.request("POST", path, json=body, headers={"Content-Type": SCIM_JSON})

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, params=params)

    async def patch(self, path: str, operations: list[dict[str, Any]], **headers: str) -> httpx.Response:
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        return await self.request("PATCH", path, json=body, headers={"Content-Type": SCIM_JSON, **headers})

    async def put(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.request("PUT", path, json=body, headers={"Content-Type": SCIM_JSON, **headers})

    async def delete(self, path: str, **headers: str) -> httpx.Response:
        return await self.request("DELETE", path, headers=headers)

    async def create_user(self, address: str | None = None, **extra: Any) -> dict[str, Any]:
        address = address or self.address()
        body = {
            "schemas": [USER_SCHEMA],
            "userName": address,
            "name": {"givenName": "Pat", "familyName": "Lee"},
            "emails": [{"value": address, "type": "work", "primary": True}],
            "active": True,
            **extra,
        }
        response = await self.post("/Users", body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


def tokens_of(services: Services) -> ScimTokens:
    return scim_tokens(services)


async def make_scim_org(
    http: httpx.AsyncClient, services: Services, *, slug: str | None = None, domain: str | None = None
) -> ScimOrg:
    tag = secrets.token_hex(3)
    slug = slug or f"acme-{tag}"
    domain = domain or f"{slug}.test"
    org = await services.orgs.create(name=slug.title(), slug=slug, context=OPERATOR)
    await services.orgs.add_domain(org, domain, context=OPERATOR)
    await services.orgs.verify_domain(org, domain, trust=True, context=OPERATOR)
    issued = await tokens_of(services).create(org, name="test IdP", context=OPERATOR)
    return ScimOrg(org=org, domain=domain, token=issued.token, http=http, services=services)


@pytest.fixture
async def scim(client_factory: Callable[..., Any]) -> ScimOrg:
    http: httpx.AsyncClient = await client_factory()
    services: Services = http.services  # type: ignore[attr-defined]
    return await make_scim_org(http, services)


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM error body (RFC 7644 section 3.12) with this status (and scimType)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA], body
    assert str(body["status"]) == str(status), body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body
