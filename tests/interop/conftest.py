"""Threshold against relying-party libraries we did not write, over HTTP to a real `threshold serve`.

One server per module (SQLite), a fresh first-party client and a fresh signed-in user per test. The
browser step (the user agent following /oauth2/authorize to the redirect URI) is done by `Browser`,
which carries the `__Host-` session cookie itself because the test server speaks plain http.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.blackbox.conftest import Browser
from tests.support import Deployment, Server, make_deployment

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header
SCOPE = "openid email offline_access"


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str | None
    auth_method: str
    signing_alg: str


@dataclass(frozen=True)
class Provider:
    deployment: Deployment
    server: Server

    @property
    def issuer(self) -> str:
        return self.server.base_url

    def register_client(self, *, signing_alg: str, auth_method: str) -> RegisteredClient:
        """`threshold clients create` for a first-party code+refresh client (so no consent page)."""
        args = [
            "clients",
            "create",
            "--name",
            f"interop-{signing_alg}-{auth_method}",
            "--redirect-uri",
            REDIRECT_URI,
            "--first-party",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            *("--scope", "openid", "--scope", "email", "--scope", "offline_access"),
            "--signing-alg",
            signing_alg,
            "--id-token-alg",
            signing_alg,
            "--auth-method",
            auth_method,
            "--json",
        ]
        if auth_method == "none":
            args.append("--public")
        result = self.deployment.cli(*args)
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        assert created["signing_alg"] == signing_alg
        assert created["id_token_signed_response_alg"] == signing_alg
        assert created["token_endpoint_auth_method"] == auth_method
        return RegisteredClient(
            client_id=created["client_id"],
            client_secret=created.get("client_secret"),
            auth_method=auth_method,
            signing_alg=signing_alg,
        )


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """One `threshold serve` on SQLite, issuer http://127.0.0.1:<port>, shared by a module."""
    with make_deployment(tmp_path_factory.mktemp("interop"), "sqlite") as deployment:
        yield Provider(deployment=deployment, server=deployment.start())


@dataclass
class User:
    email: str
    browser: Browser


@pytest.fixture
def user(provider: Provider) -> Iterator[User]:
    """A freshly signed-up user whose browser holds a live session cookie."""
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        email = f"interop.{secrets.token_hex(4)}@example.com"
        response = browser.signup(provider.server, email)
        assert response.status_code == 201, response.text
        assert browser.session, "signup set no session cookie"
        yield User(email=email, browser=browser)


def authorize_in_browser(provider: Provider, user: User, authorization_url: str) -> str:
    """Follow the authorization URL as the signed-in user agent; return the callback URL it lands on.

    A first-party client with a live session gets no login or consent page: /oauth2/authorize answers
    with a redirect to the registered redirect URI carrying code, state and iss (RFC 9207).
    """
    assert authorization_url.startswith(provider.issuer + "/"), authorization_url
    parts = urlsplit(authorization_url)
    response = user.browser.get(provider.server, f"{parts.path}?{parts.query}")
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    params = parse_qs(urlsplit(location).query)
    assert "error" not in params, params
    assert params["iss"] == [provider.issuer]
    return location
