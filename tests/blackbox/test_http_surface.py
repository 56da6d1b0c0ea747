"""One running server, over HTTP as a stranger sees it: service endpoints, headers, and hostile input."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.blackbox.conftest import CSRF_COOKIE, SESSION_COOKIE, Browser
from tests.conftest import unique_email
from tests.support import Server

JSON_ENDPOINTS = [
    ("POST", "/api/v1/signup"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/password/change"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/sessions/revoke-others"),
]


@pytest.fixture(scope="module")
def server(pg_redis_server: Server) -> Server:
    return pg_redis_server


@pytest.fixture
def signed_in(server: Server, http: httpx.Client) -> Browser:
    browser = Browser(http)
    response = browser.signup(server, unique_email("surface"))
    assert response.status_code == 201, response.text
    browser.fetch_csrf(server)
    return browser


def test_liveness_readiness_metrics(server: Server, http: httpx.Client) -> None:
    assert http.get(server.base_url + "/healthz").status_code == 200

    ready = http.get(server.base_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

    metrics = http.get(server.base_url + "/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# HELP " in metrics.text and "# TYPE " in metrics.text


def test_security_headers(server: Server, http: httpx.Client) -> None:
    for path in ("/healthz", "/api/v1/session", "/api/v1/csrf", "/login", "/no-such-page"):
        headers = http.get(server.base_url + path, headers={"Accept": "text/html"}).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers.get("referrer-policy"), path
        assert headers.get("cache-control") == "no-store", path
        assert "server" not in headers, path  # no version banner
    login_page = http.get(server.base_url + "/login", headers={"Accept": "text/html"})
    assert login_page.status_code == 200
    assert "script-src 'nonce-" in login_page.headers["content-security-policy"]


def test_openapi_documents_the_json_api(server: Server, http: httpx.Client) -> None:
    response = http.get(server.base_url + "/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/signup",
        "/api/v1/login",
        "/api/v1/session",
        "/api/v1/sessions",
        "/api/v1/sessions/{session_id}",
        "/api/v1/sessions/revoke-others",
        "/api/v1/logout",
        "/api/v1/csrf",
    ):
        assert path in paths, path


def test_cookies_are_host_prefixed_secure_and_http_only(server: Server, http: httpx.Client) -> None:
    browser = Browser(http)
    response = browser.signup(server, unique_email("cookie"))
    assert response.status_code == 201
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in session.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= attributes
    assert "domain" not in attributes
    assert "samesite=lax" in session.lower()


def test_cross_site_state_change_is_refused(server: Server, signed_in: Browser) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}):
        response = signed_in.request(server, "POST", "/api/v1/sessions/revoke-others", headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "csrf_failed"
    without_token = signed_in.request(
        server, "POST", "/api/v1/sessions/revoke-others", headers={"X-CSRF-Token": "wrong" * 8}
    )
    assert without_token.status_code == 403
    assert signed_in.get(server, "/api/v1/session").status_code == 200


# --- Hostile input ------------------------------------------------------------------------------

_DEEP = b"[" * 100_000
BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"email": "a@example.com", "pass'),
    ("truncated-string", b'{"email": "a@example.com'),
    ("not-an-object", b'["email", "password"]'),
    ("scalar", b'"hello"'),
    ("null", b"null"),
    ("wrong-types", b'{"email": 12, "password": {"a": [1, 2]}}'),
    ("nulls", b'{"email": null, "password": null}'),
    ("extra-fields", b'{"email": "a@example.com", "password": "x", "admin": true, "__proto__": {}}'),
    ("nul-bytes", b'{"email": "a\\u0000@example.com", "password": "\\u0000\\u0000"}'),
    ("lone-surrogate", b'{"email": "\\ud800@example.com", "password": "\\udfff\\ud800 plus enough chars"}'),
    ("invalid-utf8", b'{"email": "\xff\xfe@example.com", "password": "\xc3\x28 abcdefghijklmnop"}'),
    ("nan", b'{"email": NaN, "password": Infinity}'),
    ("huge-number", b'{"email": 1e999999, "password": -1e999999}'),
    ("deep-nesting", _DEEP),
    ("deep-object", b'{"email": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"),
    ("long-email", b'{"email": "' + b"a" * 5000 + b'@example.com", "password": "x"}'),
    ("odd-email", '{"email": "\u202eüñí@[127.0.0.1]", "password": "plum orbit candle harbor 42"}'.encode()),
    ("long-password", b'{"email": "a@example.com", "password": "' + b"p" * 4097 + b'"}'),
    ("garbage", bytes(range(256)) * 8),
    ("random", os.urandom(4096)),
    ("utf16", '{"email": "a@example.com", "password": "x"}'.encode("utf-16")),
    ("duplicate-keys", b'{"email": "a@example.com", "email": ["b"], "password": "x", "password": 1}'),
    ("form", b"email=a%40example.com&password=x&password=y"),
    ("multipart", b"--xyz\r\nContent-Disposition: form-data; name=email\r\n\r\na\r\n--xy"),
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json; charset=utf-16",
    "application/xml",
    None,
]


def _send(http: httpx.Client, server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = http.request(method, server.base_url + path, **kwargs)
    http.cookies.clear()
    return response


def _cookie_header(browser: Browser | None) -> dict[str, str]:
    if browser is None:
        return {}
    session, csrf = browser.cookies[SESSION_COOKIE], browser.cookies[CSRF_COOKIE]
    return {"Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf}", "X-CSRF-Token": csrf}


def _malformed_requests(browser: Browser) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for (method, path), (name, body), content_type, authed in itertools.product(
        JSON_ENDPOINTS, BODIES, CONTENT_TYPES, (False, True)
    ):
        if content_type not in (None, "application/json") and name not in (
            "truncated",
            "garbage",
            "form",
            "multipart",
        ):
            continue  # every body as JSON; a few bodies under every content type
        headers = {"Content-Type": content_type} if content_type else {}
        if authed:
            if path in ("/api/v1/logout", "/api/v1/sessions/revoke-others"):
                continue  # would end the session the rest of the flood uses
            headers.update(_cookie_header(browser))
        yield method, path, {"content": body, "headers": headers, "_label": f"{name} as {content_type}"}

    for path in ("/api/v1/signup", "/api/v1/login", "/login", "/signup"):
        yield "POST", path, {"content": b"{" + b"a" * (1024 * 1024), "_label": "1 MB body"}
        yield "POST", path, {"content": iter([b"x" * 65536] * 4), "_label": "streamed 256 KB, no length"}
        yield (
            "POST",
            path,
            {
                "content": b"email=a%40example.com&password=x",
                "headers": {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
                "_label": "form post without a CSRF token",
            },
        )
        yield (
            "POST",
            path,
            {"content": os.urandom(2048), "headers": {"Accept": "text/html"}, "_label": "html garbage"},
        )

    huge_headers = {f"X-Filler-{i}": "v" * 100 for i in range(80)}
    big_one = {"X-Big": "b" * 8000}
    odd_cookies = [
        f"{SESSION_COOKIE}=" + "a" * 4000,
        f"{SESSION_COOKIE}=%00%ff%fe; {CSRF_COOKIE}=\\x00",
        f"{SESSION_COOKIE}=; {SESSION_COOKIE}=x; {SESSION_COOKIE}",
        '=; ;;; "quoted"=1; ' + SESSION_COOKIE + '="' + "\u00e9" + '"',
        f"{SESSION_COOKIE}=" + "A" * 43,
    ]
    for path in (
        "/api/v1/session",
        "/api/v1/sessions",
        "/api/v1/forward-auth",
        "/api/v1/csrf",
        "/account",
        "/",
    ):
        yield "GET", path, {"headers": huge_headers, "_label": "80 headers"}
        yield "GET", path, {"headers": big_one, "_label": "8 KB header"}
        for cookie in odd_cookies:
            yield (
                "GET",
                path,
                {"headers": {"Cookie": cookie.encode("utf-8")}, "_label": f"cookie {cookie[:30]!r}"},
            )
        yield (
            "GET",
            path,
            {
                "headers": {
                    "X-Forwarded-For": "999.1.1.1, ::zz, " + "1.2.3.4, " * 200 + "5.6.7.8",
                    "X-Real-IP": "x",
                },
                "_label": "forwarded garbage",
            },
        )
        yield "GET", path + "?%00=%ff&a=" + "q" * 4000, {"_label": "odd query"}
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"):
        for path in ("/api/v1/login", "/api/v1/session", "/healthz"):
            yield method, path, {"_label": "odd method"}
    for path in (
        "/api/v1/sessions/" + "x" * 5000,
        "/api/v1/sessions/%00",
        "/api/v1/sessions/..%2F..%2Fhealthz",
        "/api/v1/sessions/%ff%fe",
        "/static/..%2f..%2fsettings.py",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/%ff",
        "/" + "a/" * 2000,
    ):
        yield "DELETE", path, {"headers": _cookie_header(browser), "_label": "odd path"}
        yield "GET", path, {"_label": "odd path"}


def test_malformed_requests_never_yield_a_5xx(server: Server, http: httpx.Client, signed_in: Browser) -> None:
    failures: list[str] = []
    sent = 0
    for method, path, options in _malformed_requests(signed_in):
        label = options.pop("_label")
        try:
            response = _send(http, server, method, path, **options)
        except httpx.HTTPError as exc:  # the server must answer, not drop the connection
            failures.append(f"{method} {path[:60]} [{label}]: {type(exc).__name__}")
            continue
        sent += 1
        if response.status_code >= 500:
            failures.append(f"{method} {path[:60]} [{label}]: {response.status_code} {response.text[:200]}")
        elif response.status_code == 200 and method == "POST" and path in ("/api/v1/login", "/api/v1/signup"):
            failures.append(f"{method} {path} [{label}]: accepted")

    assert not failures, "\n".join(failures)
    assert sent > 300
    # The server is still healthy, and the session used throughout still works.
    assert http.get(server.base_url + "/readyz").status_code == 200
    assert signed_in.get(server, "/api/v1/session").status_code == 200


def test_oversized_body_is_413_problem_json(server: Server, http: httpx.Client) -> None:
    response = _send(http, server, "POST", "/api/v1/login", content=b"{" + b" " * (1024 * 1024) + b"}")
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"


def test_malformed_json_is_a_400_problem(server: Server, http: httpx.Client) -> None:
    response = _send(
        http,
        server,
        "POST",
        "/api/v1/login",
        content=b'{"email": "a@',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_request"
