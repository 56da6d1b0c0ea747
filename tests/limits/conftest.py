"""One real `threshold serve` per backend (SQLite, PostgreSQL + Redis; PostgreSQL alone where a module
asks) with small, known limits, and an
async client that speaks for many browsers and client addresses at once (X-Forwarded-For from a
trusted loopback proxy), so that limits are tested under real concurrent requests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import httpx
import pytest

from tests.blackbox.conftest import CSRF_COOKIE, SESSION_COOKIE, parse_set_cookie
from tests.conftest import STRONG_PASSWORD
from tests.support import Backend, Deployment, Server, make_deployment

LIMITS: dict[str, object] = {
    "RATE_LIMIT__LOGIN_PER_ACCOUNT": 30,
    "RATE_LIMIT__LOGIN_PER_ACCOUNT_IP": 99,
    "RATE_LIMIT__LOGIN_PER_IP": 100,
    "RATE_LIMIT__SIGNUP_PER_IP": 10000,
    "RATE_LIMIT__CONSECUTIVE_FAILURES": 100,
    "MFA__CODE_ATTEMPTS": 10,
    "RATE_LIMIT__EXPORT_PER_DAY": 3,
    "EMAIL__NOTIFY_NEW_DEVICE": "false",
}


@dataclass
class Limited:
    """A server of one backend with the LIMITS above."""

    server: Server
    backend: str
    deployment: Deployment


def configure(deployment: Deployment, extra: Mapping[str, object] | None = None) -> None:
    deployment.env["THRESHOLD_TRUSTED_PROXIES"] = '["127.0.0.1/32"]'
    for name, value in {**LIMITS, **(extra or {})}.items():
        deployment.env[f"THRESHOLD_{name}"] = str(value)


BACKENDS: tuple[Backend, ...] = ("sqlite", "postgres+redis")


def serve_limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Limited]:
    """A `Limited` server on the backend `request.param` (a module may ask for more backends than
    BACKENDS by a `limited` fixture of its own)."""
    backend: Backend = request.param
    with make_deployment(tmp_path_factory.mktemp("limits"), backend, tag="limits") as deployment:
        configure(deployment, getattr(request.module, "EXTRA_SETTINGS", None))
        yield Limited(server=deployment.start(), backend=backend, deployment=deployment)


@pytest.fixture(scope="module", params=BACKENDS)
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    yield from serve_limited(request, tmp_path_factory)


@dataclass
class Agent:
    """One browser profile over an async client: its own cookies, sent explicitly (they are Secure)."""

    http: httpx.AsyncClient
    server: Server
    ip: str = "203.0.113.7"
    cookies: dict[str, str] = field(default_factory=dict)

    def headers(self, method: str, ip: str | None = None) -> dict[str, str]:
        sent = {
            "X-Forwarded-For": ip or self.ip,
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        }
        if method != "GET":
            sent["Origin"] = self.server.base_url
            if CSRF_COOKIE in self.cookies:
                sent["X-CSRF-Token"] = self.cookies[CSRF_COOKIE]
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return sent

    async def request(
        self, method: str, path: str, json: object = None, *, ip: str | None = None, keep: bool = True
    ) -> httpx.Response:
        response = await self.http.request(
            method, self.server.base_url + path, json=json, headers=self.headers(method, ip)
        )
        self.http.cookies.clear()
        if keep:
            self.absorb(response)
        return response

    def absorb(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            if not value or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    async def csrf(self) -> None:
        response = await self.request("GET", "/api/v1/csrf")
        assert response.status_code == 200, response.text

    async def signup(self, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        await self.csrf()
        return await self.request("POST", "/api/v1/signup", {"email": email, "password": password})

    async def login(
        self, email: str, password: str = STRONG_PASSWORD, *, ip: str | None = None
    ) -> httpx.Response:
        await self.csrf()
        return await self.request("POST", "/api/v1/login", {"email": email, "password": password}, ip=ip)

    @property
    def session(self) -> str | None:
        return self.cookies.get(SESSION_COOKIE)
