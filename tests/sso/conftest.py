"""Upstream sign-in against real identity providers on loopback: a scripted OpenID Provider (uvicorn),
a second Threshold process, and pysaml2's IdP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.oidc_idp import ScriptedIdp
from threshold.core.accounts import OPERATOR
from threshold.core.orgs.models import Organization
from threshold.core.sso.models import Connection, Policy
from threshold.services import Services

FLOW_COOKIE = "__Host-threshold_sso"
SESSION_COOKIE = "__Host-threshold_session"


@pytest.fixture
def idp() -> Iterator[ScriptedIdp]:
    server = ScriptedIdp().start()
    yield server
    server.stop()


@pytest.fixture
def tenant_idp() -> Iterator[ScriptedIdp]:
    server = ScriptedIdp(tenant_template=True).start()
    yield server
    server.stop()


async def acme(
    services: Services,
    idp: ScriptedIdp,
    *,
    slug: str = "acme",
    domain: str | None = "acme.test",
    verified: bool = True,
    policy: Policy | None = None,
) -> tuple[Organization, Connection]:
    """An organization with a domain (verified on the operator's word) and an OIDC connection."""
    org = await services.orgs.create(name=slug.title(), slug=slug, context=OPERATOR)
    if domain:
        await services.orgs.add_domain(org, domain, context=OPERATOR)
        if verified:
            await services.orgs.verify_domain(org, domain, trust=True, context=OPERATOR)
    connection = await services.sso.connections.add_oidc(
        org,
        name=f"{slug} IdP",
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        policy=policy or Policy(),
        context=OPERATOR,
    )
    return org, connection


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def through_idp(client: httpx.AsyncClient, start: str, **claims: Any) -> httpx.Response:
    """Start at `start` (a path of the SP), sign in at the scripted IdP as `claims`, and come back:
    the SP's answer to the callback."""
    idp_claims = claims.pop("_idp")
    assert isinstance(idp_claims, ScriptedIdp)
    idp_claims.next_claims = claims
    started = await client.get(start)
    assert started.status_code == 303, started.text[:400]
    async with httpx.AsyncClient() as browser_at_idp:
        at_idp = await browser_at_idp.get(started.headers["location"])
    assert at_idp.status_code == 302, at_idp.text[:300]
    return await client.get(path_of(at_idp.headers["location"]))


def rejected(response: httpx.Response, reason: str) -> None:
    """The sign-in ended on the error page (400) naming why the IdP's answer was not accepted."""
    assert response.status_code == 400, response.text[:500]
    assert f"reason: {reason}" in response.text
