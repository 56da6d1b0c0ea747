"""Same-origin and double-submit CSRF checks on state-changing API requests."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import CSRF_COOKIE, assert_problem, browser, set_cookie
from tests.conftest import ISSUER, STRONG_PASSWORD, csrf, login, signup, unique_email


async def test_csrf_endpoint_sets_a_stable_token(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/csrf")
    assert first.status_code == 200
    token = first.json()["token"]
    assert len(token) >= 32
    cookie = set_cookie(first, CSRF_COOKIE)
    assert cookie["value"] == token
    assert cookie.get("httponly") is True
    assert cookie.get("secure") is True
    assert str(cookie.get("samesite")).lower() == "strict"
    assert cookie.get("path") == "/"
    assert "domain" not in cookie
    for _ in range(2):
        again = await client.get("/api/v1/csrf")
        assert again.json() == {"token": token}
    async with browser(client) as other:
        assert (await other.get("/api/v1/csrf")).json()["token"] != token


@pytest.mark.parametrize("header", [None, "", "wrong-token-value-0123456789abcdef"])
async def test_missing_or_wrong_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, header: str | None
) -> None:
    email = unique_email()
    await signup(client, email)
    async with browser(client) as other:
        assert (await login(other, email)).status_code == 200
        if header is None:
            del client.headers["X-CSRF-Token"]
        else:
            client.headers["X-CSRF-Token"] = header
        assert_problem(await client.post("/api/v1/logout"), 403, "csrf_failed")
        assert_problem(await client.post("/api/v1/sessions/revoke-others"), 403, "csrf_failed")
        other_id = (await other.get("/api/v1/session")).json()["session"]["id"]
        assert_problem(await client.delete(f"/api/v1/sessions/{other_id}"), 403, "csrf_failed")
        change = await client.post(
            "/api/v1/password/change",
            json={"current_password": STRONG_PASSWORD, "new_password": "a different passphrase 9"},
        )
        assert_problem(change, 403, "csrf_failed")
        # nothing happened: both sessions live, and the password is unchanged
        assert (await client.get("/api/v1/session")).status_code == 200
        assert (await other.get("/api/v1/session")).status_code == 200
        assert len((await client.get("/api/v1/sessions")).json()["sessions"]) == 2


async def test_token_must_match_the_cookie(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    async with browser(client) as attacker:
        attackers_token = await csrf(attacker)  # a valid token, but bound to another browser
    client.headers["X-CSRF-Token"] = attackers_token
    assert_problem(await client.post("/api/v1/logout"), 403, "csrf_failed")
    assert (await client.get("/api/v1/session")).status_code == 200


async def test_token_without_its_cookie_is_refused(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    client.cookies.delete(CSRF_COOKIE)
    assert_problem(await client.post("/api/v1/logout"), 403, "csrf_failed")
    assert (await client.get("/api/v1/session")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://auth.threshold.test"},
        {"origin": "https://auth.threshold.test.evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
    ids=["evil", "null", "http", "suffix", "cross-site", "same-site"],
)
async def test_cross_site_requests_are_refused_even_with_a_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await signup(client, unique_email())
    await csrf(client)
    assert_problem(await client.post("/api/v1/logout", headers=headers), 403, "csrf_failed")
    assert (await client.get("/api/v1/session")).status_code == 200
    # login CSRF: a cross-site sign-in is refused even without a session cookie
    async with browser(client) as fresh:
        await csrf(fresh)
        email = unique_email()
        response = await fresh.post(
            "/api/v1/signup", json={"email": email, "password": STRONG_PASSWORD}, headers=headers
        )
        assert_problem(response, 403, "csrf_failed")
        assert (await login(fresh, email)).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": ISSUER},
        {"sec-fetch-site": "same-origin"},
        {"origin": ISSUER, "sec-fetch-site": "same-origin"},
    ],
    ids=["origin", "sec-fetch-site", "both"],
)
async def test_same_origin_requests_pass(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await csrf(client)
    response = await client.post(
        "/api/v1/signup", json={"email": unique_email(), "password": STRONG_PASSWORD}, headers=headers
    )
    assert response.status_code == 201, response.text
    await csrf(client)
    assert (await client.post("/api/v1/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/session")).status_code == 401


# --- each refusal says which check failed and what to do ------------------------------------------


async def _refused(response: httpx.Response, reason: str) -> str:
    body = assert_problem(response, 403, "csrf_failed")
    assert body["reason"] == reason, body
    detail: str = body["detail"]
    return detail


async def test_a_foreign_origin_is_named_with_the_allowed_one(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    response = await client.post("/api/v1/logout", headers={"Origin": "https://evil.example"})
    detail = await _refused(response, "origin")
    assert "The Origin https://evil.example is not allowed" in detail
    assert f"(allowed: {ISSUER})" in detail


async def test_a_cross_site_fetch_is_named(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    response = await client.post("/api/v1/logout", headers={"Sec-Fetch-Site": "cross-site"})
    detail = await _refused(response, "cross_site")
    assert "Sec-Fetch-Site is cross-site" in detail
    assert ISSUER in detail


async def test_a_missing_token_says_where_to_get_it(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    del client.headers["X-CSRF-Token"]
    detail = await _refused(await client.post("/api/v1/logout"), "missing_token")
    assert "GET /api/v1/csrf" in detail
    assert "X-CSRF-Token header" in detail


async def test_a_wrong_token_says_to_fetch_a_fresh_one(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    client.headers["X-CSRF-Token"] = "wrong-token-value-0123456789abcdef"
    detail = await _refused(await client.post("/api/v1/logout"), "token_mismatch")
    assert f"does not match the {CSRF_COOKIE} cookie" in detail
    assert "fresh one from GET /api/v1/csrf" in detail


async def test_a_token_without_its_cookie_names_the_cookie(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    client.cookies.delete(CSRF_COOKIE)
    detail = await _refused(await client.post("/api/v1/logout"), "missing_cookie")
    assert f"No {CSRF_COOKIE} cookie" in detail
    assert "GET /api/v1/csrf" in detail


@pytest.mark.parametrize(
    "origin",
    ["https://" + "a" * 300 + ".example", "https://\u00e9vil.example", "https://evil.example/<b>x y"],
    ids=["long", "non-ascii", "markup-and-space"],
)
async def test_an_echoed_origin_is_cut_and_printable(client: httpx.AsyncClient, origin: str) -> None:
    await csrf(client)
    response = await client.post("/api/v1/logout", headers=[(b"Origin", origin.encode("utf-8"))])
    detail = await _refused(response, "origin")
    shown = detail.removeprefix("The Origin ").split(" is not allowed")[0]
    assert len(shown) <= 103
    assert shown.isascii() and shown.isprintable() and " " not in shown
    assert len(detail) < 300


async def test_a_hosted_page_tells_a_person_to_reload(client: httpx.AsyncClient) -> None:
    """The HTML rendering of a refusal speaks to a person, not to a developer of an API client."""
    await csrf(client)
    response = await client.post(
        "/consent",
        data={"client_id": "x"},
        headers={"Origin": ISSUER, "Accept": "text/html"},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Reload the page and try again." in response.text
    assert "X-CSRF-Token" not in response.text


# --- what the README promises about requests without Origin and Sec-Fetch-Site --------------------


async def test_without_origin_headers_a_session_cookie_still_needs_the_token(
    client: httpx.AsyncClient,
) -> None:
    """No Origin and no Sec-Fetch-Site passes the same-origin check; the token still guards the cookie."""
    await signup(client, unique_email())
    token = client.headers.pop("X-CSRF-Token")
    refused = await client.post("/api/v1/logout")
    assert not {"origin", "sec-fetch-site"} & set(refused.request.headers)
    assert "__Host-threshold_session" in refused.request.headers["cookie"]
    await _refused(refused, "missing_token")
    assert (await client.get("/api/v1/session")).status_code == 200

    passed = await client.post("/api/v1/logout", headers={"X-CSRF-Token": token})
    assert not {"origin", "sec-fetch-site"} & set(passed.request.headers)
    assert passed.status_code == 204, passed.text
    assert (await client.get("/api/v1/session")).status_code == 401


async def test_without_origin_headers_or_cookies_no_token_is_asked(client: httpx.AsyncClient) -> None:
    """A non-browser client (no cookies, no Origin) signs up and in without the CSRF dance."""
    email = unique_email()
    response = await client.post("/api/v1/signup", json={"email": email, "password": STRONG_PASSWORD})
    assert response.status_code == 201, response.text
    client.cookies.clear()
    response = await client.post("/api/v1/login", json={"email": email, "password": STRONG_PASSWORD})
    assert response.status_code == 200, response.text
    assert not {"origin", "sec-fetch-site", "x-csrf-token", "cookie"} & set(response.request.headers)
