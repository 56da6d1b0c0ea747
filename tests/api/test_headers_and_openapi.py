"""Security headers on API and page responses; the OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import signup, unique_email


def _csp(response: httpx.Response) -> dict[str, str]:
    directives = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    return {d.split(" ", 1)[0]: (d.split(" ", 1)[1] if " " in d else "") for d in directives if d}


def _assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] in ("same-origin", "no-referrer", "strict-origin")
    hsts = response.headers["strict-transport-security"]
    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))  # type: ignore[union-attr]
    assert max_age >= 31536000
    assert _csp(response)["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    "path", ["/api/v1/session", "/api/v1/csrf", "/api/v1/forward-auth", "/api/v1/nope", "/healthz"]
)
async def test_api_responses_carry_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    _assert_common_headers(response)
    csp = _csp(response)
    assert csp["default-src"] == "'none'"
    assert "script-src" not in csp or "'unsafe-inline'" not in csp["script-src"]


async def test_credentialed_responses_are_not_cached(client: httpx.AsyncClient) -> None:
    signed_up = await signup(client, unique_email())
    for response in (
        signed_up,
        await client.get("/api/v1/session"),
        await client.get("/api/v1/sessions"),
        await client.get("/api/v1/csrf"),
        await client.get("/api/v1/forward-auth"),
        await client.get("/account"),
    ):
        assert response.headers["cache-control"] == "no-store", response.request.url
        _assert_common_headers(response)


@pytest.mark.parametrize("path", ["/login", "/signup"])
async def test_pages_have_a_nonce_csp_matching_the_style_tag(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    _assert_common_headers(response)
    assert response.headers["cache-control"] == "no-store"
    csp = _csp(response)
    nonces = re.findall(r"'nonce-([^']+)'", csp["style-src"])
    assert len(nonces) == 1
    style_nonces = re.findall(r'<style nonce="([^"]+)"', response.text)
    assert style_nonces == nonces
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert csp["form-action"] == "'self'"
    assert csp["base-uri"] == "'none'"
    assert re.search(r"<script(?![^>]*nonce=)", response.text) is None

    again = await client.get(path)
    assert re.findall(r"'nonce-([^']+)'", again.headers["content-security-policy"]) != nonces


EXPECTED_PATHS = {
    "/api/v1/csrf": {"get"},
    "/api/v1/signup": {"post"},
    "/api/v1/login": {"post"},
    "/api/v1/session": {"get"},
    "/api/v1/sessions": {"get"},
    "/api/v1/sessions/{session_id}": {"delete"},
    "/api/v1/sessions/revoke-others": {"post"},
    "/api/v1/logout": {"post"},
    "/api/v1/password/change": {"post"},
    "/api/v1/forward-auth": {"get"},
}


async def test_openapi_documents_the_json_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, methods in EXPECTED_PATHS.items():
        assert path in paths, f"{path} is not documented"
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert not any(p in paths for p in ("/login", "/signup", "/account", "/logout")), "pages are not API"
    login = paths["/api/v1/login"]["post"]
    assert "requestBody" in login
    assert "401" in login["responses"] and "429" in login["responses"]
    session_schema = paths["/api/v1/session"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "schema" in session_schema
