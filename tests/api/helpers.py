"""Helpers for the API suite: cookie attributes, extra browsers, problem bodies, a fake clock."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx

from tests.conftest import ISSUER

SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
HOST = "auth.threshold.test"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
PROBLEM = "application/problem+json"


def set_cookie(response: httpx.Response, name: str) -> dict[str, Any]:
    """The Set-Cookie header for `name`: {"value": ..., attribute (lower-case): value or True}."""
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        key, _, value = first.partition("=")
        if key != name:
            continue
        parsed: dict[str, Any] = {"value": value.strip('"')}
        for attribute in attributes:
            attr, sep, attr_value = attribute.partition("=")
            parsed[attr.strip().lower()] = attr_value.strip() if sep else True
        return parsed
    raise AssertionError(f"no Set-Cookie for {name} in {response.headers.get_list('set-cookie')}")


def session_token(response: httpx.Response) -> str:
    value: str = set_cookie(response, SESSION_COOKIE)["value"]
    return value


def put_session_cookie(client: httpx.AsyncClient, token: str) -> None:
    """Replace the browser's session cookie with `token` (as an attacker or an old tab might)."""
    client.cookies.delete(SESSION_COOKIE)
    client.cookies.set(SESSION_COOKIE, token, domain=HOST, path="/")


def browser(client: httpx.AsyncClient, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    """Another browser (own cookie jar) on the same app, optionally from another client address."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app, client=(ip, 41000)),  # type: ignore[attr-defined]
        base_url=ISSUER,
        headers={"user-agent": USER_AGENT},
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def form_value(page: str, name: str) -> str:
    """The value of the first <input name=...> on an HTML page."""
    for tag in re.findall(r"<input\b[^>]*>", page):
        if re.search(rf'\bname="{re.escape(name)}"', tag):
            match = re.search(r'\bvalue="([^"]*)"', tag)
            return html.unescape(match.group(1)) if match else ""
    raise AssertionError(f"no input named {name}")


class FakeClock:
    """A clock that only moves when told to; starts at the real time so Redis expiries stay sane."""

    def __init__(self) -> None:
        self.current = time.time()

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds
