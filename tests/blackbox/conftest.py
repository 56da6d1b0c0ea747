"""The real server as separate processes, driven only over HTTP (and the CLI, as an operator would).

Browser cookies are `Secure`, so over plain http a cookie jar would not send them: `Browser` carries
them itself, reading Set-Cookie and sending `Cookie:` explicitly, and does the double-submit CSRF dance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.support import Server, make_deployment

SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@pytest.fixture(scope="module")
def pg_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `threshold serve` on PostgreSQL + Redis, shared by a module."""
    with make_deployment(tmp_path_factory.mktemp("server"), "postgres+redis") as deployment:
        yield deployment.start()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


# --- A browser over plain http ----------------------------------------------------------------


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """(name, value, attributes with lower-case names) of one Set-Cookie header."""
    first, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attrs: dict[str, str] = {}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name.strip(), value.strip().strip('"'), attrs


@dataclass
class Browser:
    """One browser profile: its own cookies, sent explicitly to whichever server it talks to."""

    http: httpx.Client
    cookies: dict[str, str] = field(default_factory=dict)
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

    @property
    def session(self) -> str | None:
        return self.cookies.get(SESSION_COOKIE)

    def request(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        method = method.upper()
        if method not in SAFE_METHODS and SESSION_COOKIE in self.cookies and CSRF_COOKIE not in self.cookies:
            self.fetch_csrf(server)
        sent: dict[str, str] = {"User-Agent": self.user_agent}
        if method not in SAFE_METHODS:
            sent["Origin"] = server.base_url
            if CSRF_COOKIE in self.cookies:
                sent["X-CSRF-Token"] = self.cookies[CSRF_COOKIE]
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        sent.update(headers or {})
        response = self.http.request(method, server.base_url + path, json=json, headers=sent)
        self.http.cookies.clear()  # only this object's cookies are ever sent
        self._absorb(response)
        return response

    def get(self, server: Server, path: str) -> httpx.Response:
        return self.request(server, "GET", path)

    def post(self, server: Server, path: str, json: Any = None) -> httpx.Response:
        return self.request(server, "POST", path, json=json)

    def delete(self, server: Server, path: str) -> httpx.Response:
        return self.request(server, "DELETE", path)

    def fetch_csrf(self, server: Server) -> str:
        response = self.get(server, "/api/v1/csrf")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        assert self.cookies.get(CSRF_COOKIE) == token
        return token

    def signup(self, server: Server, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        self.fetch_csrf(server)
        return self.post(server, "/api/v1/signup", {"email": email, "password": password})

    def login(self, server: Server, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        self.fetch_csrf(server)
        return self.post(server, "/api/v1/login", {"email": email, "password": password})

    def _absorb(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            if name == SESSION_COOKIE and value:
                assert "secure" in attrs and "httponly" in attrs, header
                assert attrs.get("path") == "/" and "domain" not in attrs, header  # __Host- rules
            if not value or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
