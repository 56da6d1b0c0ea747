"""Support for the black-box OIDC tests: a browser of the issuer's origin and a relying party over HTTP.

Several `threshold serve` processes behind one public name (as behind a load balancer) share the issuer:
they are started with `Deployment.start(issuer=...)` instead of answering as their own URL.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.blackbox.conftest import SAFE_METHODS, Browser
from tests.oidc.helpers import pkce, query_of
from tests.support import Deployment, Server

REDIRECT_URI = "https://rp.example/callback"
LOGOUT_URI = "https://rp.example/signed-out"


@dataclass
class IssuerBrowser(Browser):
    """A browser whose pages all come from the issuer's origin, whichever process answers."""

    origin: str = ""

    def request(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if self.origin and method.upper() not in SAFE_METHODS:
            sent.setdefault("Origin", self.origin)
        return super().request(server, method, path, json=json, headers=sent)

    def post_form(self, server: Server, path: str, form: Mapping[str, str]) -> httpx.Response:
        """A form submission (the hosted pages), carrying the cookies like the JSON helpers do."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.post(
            server.base_url + path,
            data=dict(form),
            headers={
                "Cookie": cookie,
                "Origin": self.origin or server.base_url,
                "User-Agent": self.user_agent,
            },
        )
        self.http.cookies.clear()
        self._absorb(response)
        return response


@dataclass
class HttpRP:
    """A relying party registered with `threshold clients create --json`, talking plain HTTP."""

    client_id: str
    secret: str | None
    http: httpx.Client
    redirect_uri: str = REDIRECT_URI

    @classmethod
    def create(cls, deployment: Deployment, http: httpx.Client, *args: str) -> HttpRP:
        result = deployment.cli("clients", "create", "--name", "Black-box RP", *args, "--json")
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        return cls(client_id=body["client_id"], secret=body.get("client_secret"), http=http)

    def _auth(self, form: dict[str, str]) -> tuple[dict[str, str], tuple[str, str] | None]:
        if self.secret:
            return form, (self.client_id, self.secret)
        return {**form, "client_id": self.client_id}, None

    def post(self, server: Server, path: str, form: dict[str, str]) -> httpx.Response:
        data, auth = self._auth(form)
        return (
            self.http.post(server.base_url + path, data=data, auth=auth)
            if auth
            else self.http.post(server.base_url + path, data=data)
        )

    def authorize(
        self, browser: Browser, server: Server, **overrides: str
    ) -> tuple[str, str, dict[str, str]]:
        """(code, verifier, params) for a signed-in browser."""
        verifier, challenge = pkce()
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": "openid email offline_access",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **overrides,
        }
        response = browser.get(server, "/oauth2/authorize?" + urlencode(params))
        assert response.status_code == 303, response.text[:500]
        location = response.headers["location"]
        assert location.split("?")[0] == self.redirect_uri, location
        returned = query_of(location)
        assert returned["state"] == params["state"], returned
        return returned["code"], verifier, params

    def exchange(self, server: Server, code: str, verifier: str) -> httpx.Response:
        return self.post(
            server,
            "/oauth2/token",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            },
        )

    def tokens(self, browser: Browser, server: Server, token_server: Server | None = None) -> dict[str, Any]:
        code, verifier, params = self.authorize(browser, server)
        response = self.exchange(token_server or server, code, verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        body["_nonce"] = params["nonce"]
        body["_verifier"] = verifier
        body["_code"] = code
        return body

    def refresh(self, server: Server, refresh_token: str) -> httpx.Response:
        return self.post(
            server, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def userinfo(self, server: Server, access_token: str) -> httpx.Response:
        return self.http.get(
            server.base_url + "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error: str = response.json()["error"]
    return error


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path
