"""client_ip, the same-origin and CSRF checks, and safe_next (no open redirect)."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from threshold.core.errors import CsrfFailed
from threshold.settings import IPNetwork, Settings
from threshold.web.pages.common import safe_next
from threshold.web.security import CSRF_COOKIE, check_csrf_token, check_same_origin, client_ip

PROXIES: list[IPNetwork] = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def make_request(
    headers: list[tuple[str, str]] | None = None, *, peer: str = "10.0.0.2", method: str = "POST"
) -> Request:
    return Request(
        {
            "type": "http",
            "http_version": "1.1",
            "method": method,
            "scheme": "https",
            "path": "/api/v1/login",
            "raw_path": b"/api/v1/login",
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers or []],
            "client": (peer, 50000),
            "server": ("auth.example.com", 443),
        }
    )


def xff(value: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", value)]


# --- client_ip ------------------------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip(make_request(xff("198.51.100.1"), peer="203.0.113.7"), []) == "203.0.113.7"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    request = make_request(xff("198.51.100.1"), peer="203.0.113.7")
    assert client_ip(request, PROXIES) == "203.0.113.7"


def test_trusted_proxy_forwards_the_client_address() -> None:
    assert client_ip(make_request(xff("198.51.100.1")), PROXIES) == "198.51.100.1"


def test_client_cannot_spoof_the_leftmost_hop() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    assert client_ip(make_request(xff("1.2.3.4, 198.51.100.1")), PROXIES) == "198.51.100.1"


def test_chain_of_trusted_proxies_is_skipped_from_the_right() -> None:
    request = make_request(xff("1.2.3.4, 198.51.100.1, 10.1.2.3, 10.9.9.9"))
    assert client_ip(request, PROXIES) == "198.51.100.1"


def test_repeated_forwarded_for_headers_are_one_list() -> None:
    request = make_request([("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "198.51.100.1")])
    assert client_ip(request, PROXIES) == "198.51.100.1"


def test_ipv6_proxy_and_client() -> None:
    request = make_request(xff("2001:db8::1"), peer="fd00::5")
    assert client_ip(request, PROXIES) == "2001:db8::1"


@pytest.mark.parametrize(
    "header",
    ["not-an-ip", "1.2.3.4, garbage", "198.51.100.1:4444", "<script>", "1.2.3.4, 999.1.1.1", "", " , ,"],
)
def test_garbage_falls_back_to_the_peer(header: str) -> None:
    assert client_ip(make_request(xff(header)), PROXIES) == "10.0.0.2"


def test_missing_header_from_a_proxy_gives_the_peer() -> None:
    assert client_ip(make_request(), PROXIES) == "10.0.0.2"


# --- same-origin check ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(issuer="https://auth.example.com/sso", key_encryption_key="x" * 43)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Origin", "https://auth.example.com")], id="own-origin"),
        pytest.param([("Sec-Fetch-Site", "same-origin")], id="fetch-same-origin"),
        pytest.param([("Sec-Fetch-Site", "none")], id="fetch-user-initiated"),
        pytest.param([], id="no-headers"),
    ],
)
def test_same_origin_requests_pass(settings: Settings, headers: list[tuple[str, str]]) -> None:
    check_same_origin(make_request(headers), settings)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Origin", "https://evil.example")], id="foreign-origin"),
        pytest.param([("Origin", "https://auth.example.com.evil.example")], id="suffix-origin"),
        pytest.param([("Origin", "http://auth.example.com")], id="scheme-downgrade"),
        pytest.param([("Origin", "https://auth.example.com:8443")], id="other-port"),
        pytest.param([("Origin", "null")], id="null-origin"),
        pytest.param(
            [("Origin", "https://evil.example"), ("Sec-Fetch-Site", "same-origin")], id="origin-wins"
        ),
        pytest.param([("Sec-Fetch-Site", "cross-site")], id="fetch-cross-site"),
        pytest.param([("Sec-Fetch-Site", "same-site")], id="fetch-same-site"),
    ],
)
def test_cross_site_requests_are_refused(settings: Settings, headers: list[tuple[str, str]]) -> None:
    with pytest.raises(CsrfFailed) as caught:
        check_same_origin(make_request(headers), settings)
    assert caught.value.code == "csrf_failed"


# --- CSRF token (double submit) -------------------------------------------------------------------

TOKEN = "c2VjcmV0LWNzcmYtdG9rZW4tdmFsdWUtZm9yLXRlc3Q"


def with_cookie(value: str) -> Request:
    return make_request([("Cookie", f"{CSRF_COOKIE}={value}")])


def test_matching_token_passes() -> None:
    check_csrf_token(with_cookie(TOKEN), TOKEN)


@pytest.mark.parametrize(
    ("request_", "supplied"),
    [
        pytest.param(with_cookie(TOKEN), TOKEN[:-1] + "x", id="mismatch"),
        pytest.param(with_cookie(TOKEN), None, id="not-supplied"),
        pytest.param(with_cookie(TOKEN), "", id="empty-supplied"),
        pytest.param(make_request(), TOKEN, id="no-cookie"),
        pytest.param(make_request(), None, id="neither"),
        pytest.param(make_request([("Cookie", f"{CSRF_COOKIE}=")]), "", id="both-empty"),
    ],
)
def test_missing_or_mismatched_token_is_refused(request_: Request, supplied: str | None) -> None:
    with pytest.raises(CsrfFailed):
        check_csrf_token(request_, supplied)


# --- safe_next ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
        "javascript:alert(1)",
        "evil.com",
        "/ok\r\nSet-Cookie: a=b",
        "/ok\nLocation: https://evil.com",
        "/\t/evil.com",
        "/path\\..\\evil",
        "/" + "a" * 3000,
        "",
        None,
    ],
)
def test_safe_next_refuses_anything_but_a_local_path(target: str | None) -> None:
    assert safe_next(target) == "/account"
    assert safe_next(target, default="/home") == "/home"


@pytest.mark.parametrize(
    "target", ["/account?x=1", "/", "/oauth2/authorize?client_id=a&redirect_uri=https%3A%2F%2Fapp.example"]
)
def test_safe_next_follows_local_paths(target: str) -> None:
    assert safe_next(target) == target
