"""Hosted pages: HTML forms that work without JavaScript, on the same flows as the JSON API."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import SESSION_COOKIE, FakeClock, browser, form_value, session_token, set_cookie
from tests.conftest import ISSUER, STRONG_PASSWORD, login, signup, unique_email

URLENCODED = "application/x-www-form-urlencoded"
BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}


async def _form(client: httpx.AsyncClient, page: str) -> str:
    response = await client.get(page)
    assert response.status_code == 200, response.text
    return form_value(response.text, "csrf_token")


async def _post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    return await client.post(path, data=data, headers=BROWSER_POST)


async def _page_signup(client: httpx.AsyncClient, email: str) -> httpx.Response:
    token = await _form(client, "/signup")
    return await _post(client, "/signup", {"csrf_token": token, "email": email, "password": STRONG_PASSWORD})


async def _page_login(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD, next: str = "/account"
) -> httpx.Response:
    token = await _form(client, "/login")
    return await _post(
        client, "/login", {"csrf_token": token, "email": email, "password": password, "next": next}
    )


def after_offer(location: str) -> str:
    """Where a sign-in lands once past the passkey upgrade offer (which keeps `next`)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(location)
    if parts.path == "/account/passkey-upgrade":
        return parse_qs(parts.query)["next"][0]
    return location


def _labelled(page: str, field: str) -> bool:
    return bool(re.search(rf'<label for="{field}">', page)) and bool(re.search(rf'<input id="{field}"', page))


@pytest.mark.parametrize("path", ["/login", "/signup"])
async def test_forms_render_with_labels_and_a_csrf_field(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    page = response.text
    assert f'<form method="post" action="{path}"' in page
    assert _labelled(page, "email") and _labelled(page, "password")
    token = form_value(page, "csrf_token")
    assert len(token) >= 32
    assert set_cookie(response, "__Host-threshold_csrf")["value"] == token
    # Progressive enhancement only: the one script (passkeys) carries the CSP nonce, nothing inline.
    found = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
    assert found is not None
    nonce = found.group(1)
    assert all(f'nonce="{nonce}"' in tag for tag in re.findall(r"<script[^>]*>", page))
    assert not re.search(r"\son[a-z]+=", page)
    assert '<html lang="en" dir="ltr">' in page


async def test_signup_form_creates_the_account_and_signs_in(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await _page_signup(client, email)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/account"
    cookie = set_cookie(response, SESSION_COOKIE)
    assert cookie.get("httponly") is True and cookie.get("secure") is True
    account = await client.get("/account")
    assert account.status_code == 200
    assert email in account.text
    assert (await client.get("/api/v1/session")).json()["user"]["email"] == email


async def test_signup_form_shows_policy_errors(client: httpx.AsyncClient) -> None:
    token = await _form(client, "/signup")
    email = unique_email()
    response = await _post(client, "/signup", {"csrf_token": token, "email": email, "password": "tiny9pw"})
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert form_value(response.text, "email") == email
    assert 'aria-invalid="true"' in response.text
    assert "tiny9pw" not in response.text  # the password is never echoed
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_signup_page_when_disabled(client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await client_factory(signup_enabled=False)
    page = await client.get("/signup")
    assert page.status_code == 200
    assert 'action="/signup"' not in page.text
    email = unique_email()
    token = form_value((await client.get("/login")).text, "csrf_token")
    response = await _post(
        client, "/signup", {"csrf_token": token, "email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("csrf_token", [None, "", "forged-token-0123456789abcdefghijkl"])
async def test_form_posts_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, csrf_token: str | None
) -> None:
    await client.get("/signup")  # the browser has a CSRF cookie
    email = unique_email()
    data = {"email": email, "password": STRONG_PASSWORD}
    if csrf_token is not None:
        data["csrf_token"] = csrf_token
    response = await _post(client, "/signup", data)
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    services = client.services  # type: ignore[attr-defined]
    assert await services.users.get_by_email(email) is None
    async with browser(client) as other:
        assert (await login(other, email)).status_code == 401


async def test_cross_site_form_post_is_refused(client: httpx.AsyncClient) -> None:
    email = unique_email()
    async with browser(client) as owner:
        await signup(owner, email)
    token = await _form(client, "/login")
    response = await client.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": STRONG_PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_login_form_wrong_password_keeps_the_email(client: httpx.AsyncClient) -> None:
    email = unique_email()
    async with browser(client) as owner:
        await signup(owner, email)
    response = await _page_login(client, email, "not the right password")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text
    assert "incorrect" in response.text
    assert form_value(response.text, "email") == email
    assert "not the right password" not in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_login_form_signs_in_with_a_new_session(client: httpx.AsyncClient) -> None:
    email = unique_email()
    old = session_token(await signup(client, email))
    assert (await client.get("/login")).status_code == 303  # already signed in: no form
    token = client.cookies.get("__Host-threshold_csrf") or ""
    response = await _post(
        client, "/login", {"csrf_token": token, "email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account/passkey-upgrade?next=%2Faccount"  # the upgrade offer
    new = session_token(response)
    assert new != old
    async with browser(client) as old_holder:
        old_holder.cookies.set(SESSION_COOKIE, old, domain="auth.threshold.test")
        assert (await old_holder.get("/api/v1/session")).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com/",
        "/\\evil.com",
        "\\\\evil.com",
        "javascript:alert(1)",
        "/\r\nSet-Cookie: x=1",
        "/\tevil",
    ],
)
async def test_login_never_redirects_off_site(client: httpx.AsyncClient, target: str) -> None:
    email = unique_email()
    async with browser(client) as owner:
        await signup(owner, email)
    page = await client.get("/login", params={"next": target})
    assert page.status_code == 200
    hidden_next = form_value(page.text, "next")
    assert hidden_next == "/account"
    for next_value in (hidden_next, target):
        async with browser(client) as fresh:
            response = await _page_login(fresh, email, next=next_value)
            assert response.status_code == 303
            location = after_offer(response.headers["location"])
            assert location.startswith("/") and not location.startswith(("//", "/\\"))
            assert location == "/account", location


async def test_login_follows_a_local_next(client: httpx.AsyncClient) -> None:
    email = unique_email()
    async with browser(client) as owner:
        await signup(owner, email)
    page = await client.get("/login", params={"next": "/account?tab=sessions"})
    assert form_value(page.text, "next") == "/account?tab=sessions"
    response = await _page_login(client, email, next="/account?tab=sessions")
    assert after_offer(response.headers["location"]) == "/account?tab=sessions"


async def test_account_requires_a_session(client: httpx.AsyncClient) -> None:
    response = await client.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account"
    client.cookies.set(SESSION_COOKIE, "garbage", domain="auth.threshold.test")
    assert (await client.get("/account")).headers["location"] == "/login?next=/account"


async def test_account_page_lists_sessions_and_offers_actions(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await _page_signup(client, email)
    async with browser(client, ip="198.51.100.60") as other:
        await login(other, email)
        other_id = (await other.get("/api/v1/session")).json()["session"]["id"]
        current_id = (await client.get("/api/v1/session")).json()["session"]["id"]
        page = (await client.get("/account")).text
        assert email in page
        actions = re.findall(r'action="/account/sessions/([^/"]+)/revoke"', page)
        assert sorted(actions) == sorted([current_id, other_id])
        assert "198.51.100.60" in page and "203.0.113.7" in page
        assert "this browser" in page
        assert 'action="/account/sessions/revoke-others"' in page
        assert 'action="/account/password"' in page
        assert _labelled(page, "current_password") and _labelled(page, "new_password")
        assert form_value(page, "csrf_token") == client.cookies.get("__Host-threshold_csrf")

        token = form_value(page, "csrf_token")
        response = await _post(client, f"/account/sessions/{other_id}/revoke", {"csrf_token": token})
        assert response.status_code == 303
        assert response.headers["location"] == "/account?done=revoked"
        assert (await other.get("/api/v1/session")).status_code == 401
        after = await client.get("/account?done=revoked")
        assert after.status_code == 200
        assert re.findall(r'action="/account/sessions/([^/"]+)/revoke"', after.text) == [current_id]
        assert "The session was signed out." in after.text


async def test_account_revoke_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await _page_signup(client, email)
    async with browser(client) as other:
        await login(other, email)
        other_id = (await other.get("/api/v1/session")).json()["session"]["id"]
        response = await _post(client, f"/account/sessions/{other_id}/revoke", {})
        assert response.status_code == 403
        response = await _post(client, "/account/sessions/revoke-others", {"csrf_token": "nope" * 8})
        assert response.status_code == 403
        assert (await other.get("/api/v1/session")).status_code == 200


async def test_account_revoke_others(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await _page_signup(client, email)
    async with browser(client) as other:
        await login(other, email)
        token = form_value((await client.get("/account")).text, "csrf_token")
        response = await _post(client, "/account/sessions/revoke-others", {"csrf_token": token})
        assert response.headers["location"] == "/account?done=others"
        assert (await other.get("/api/v1/session")).status_code == 401
        assert (await client.get("/api/v1/session")).status_code == 200


async def test_account_password_change(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await _page_signup(client, email)
    old = client.cookies.get(SESSION_COOKIE)
    token = form_value((await client.get("/account")).text, "csrf_token")
    new_password = "copper lantern tides at dawn 12"
    wrong = await _post(
        client,
        "/account/password",
        {"csrf_token": token, "current_password": "not it at all", "new_password": new_password},
    )
    assert wrong.status_code == 403
    assert 'id="password-error"' in wrong.text
    response = await _post(
        client,
        "/account/password",
        {"csrf_token": token, "current_password": STRONG_PASSWORD, "new_password": new_password},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account?done=password"
    assert session_token(response) != old
    assert (await client.get("/account")).status_code == 200
    async with browser(client) as other:
        assert (await login(other, email, STRONG_PASSWORD)).status_code == 401
        assert (await login(other, email, new_password)).status_code == 200


async def test_logout_form_ends_the_session(client: httpx.AsyncClient) -> None:
    await _page_signup(client, unique_email())
    token = client.cookies.get(SESSION_COOKIE) or ""
    page = await client.get("/logout")
    assert page.status_code == 200
    refused = await _post(client, "/logout", {})
    assert refused.status_code == 403
    assert (await client.get("/api/v1/session")).status_code == 200
    response = await _post(client, "/logout", {"csrf_token": form_value(page.text, "csrf_token")})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert set_cookie(response, SESSION_COOKIE)["value"] == ""
    assert (await client.get("/account")).status_code == 303
    async with browser(client) as copy:
        copy.cookies.set(SESSION_COOKIE, token, domain="auth.threshold.test")
        assert (await copy.get("/api/v1/session")).status_code == 401


async def test_theme(client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await client_factory(
        theme={"product_name": "Acme ID", "accent_color": "#AA3300"}
    )
    for path in ("/login", "/signup"):
        page = (await client.get(path)).text
        assert "Acme ID" in page
        assert "<title>" in page and re.search(r"<title>[^<]*Acme ID</title>", page)
        assert re.search(r"<style nonce=\"[^\"]+\">[^<]*--accent:\s*#aa3300", page)


async def test_theme_is_escaped(client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await client_factory(theme={"product_name": "<b>Acme</b> & Co"})
    page = (await client.get("/login")).text
    assert "<b>Acme</b>" not in page
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in page


async def test_reflected_email_is_escaped(client: httpx.AsyncClient) -> None:
    payload = '"><script>alert(1)</script>@example.com'
    response = await _page_login(client, payload, "whatever password")
    assert response.status_code in (400, 401)
    assert "<script>alert(1)</script>" not in response.text


async def test_pages_error_as_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text


async def test_revoking_this_browser_from_the_account_page_signs_out(client: httpx.AsyncClient) -> None:
    await _page_signup(client, unique_email())
    current_id = (await client.get("/api/v1/session")).json()["session"]["id"]
    token = form_value((await client.get("/account")).text, "csrf_token")
    response = await _post(client, f"/account/sessions/{current_id}/revoke", {"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert set_cookie(response, SESSION_COOKIE)["value"] == ""
    assert (await client.get("/account")).status_code == 303


async def test_account_page_cannot_revoke_another_users_session(client: httpx.AsyncClient) -> None:
    async with browser(client) as stranger:
        await signup(stranger, unique_email("stranger"))
        stranger_id = (await stranger.get("/api/v1/session")).json()["session"]["id"]
        await _page_signup(client, unique_email())
        token = form_value((await client.get("/account")).text, "csrf_token")
        response = await _post(client, f"/account/sessions/{stranger_id}/revoke", {"csrf_token": token})
        assert response.status_code == 404
        assert "No such session." in response.text
        assert (await stranger.get("/api/v1/session")).status_code == 200


async def test_login_page_when_throttled(clocked_client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await clocked_client_factory(
        FakeClock(), rate_limit={"login_per_account_ip": 2, "window": 600}
    )
    email = unique_email()
    for _ in range(2):
        assert (await _page_login(client, email, "wrong password guess")).status_code == 401
    response = await _page_login(client, email, "wrong password guess")
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 600
    assert "Too many attempts" in response.text
    assert form_value(response.text, "email") == email


@pytest.mark.parametrize(
    "kwargs",
    [
        {"files": {"upload": ("a.txt", b"x")}},
        {"data": {f"field{i}": "x" for i in range(30)}},
        {"data": {"email": "a" * 5000, "password": "x"}},
        {"content": b"email=%ff%fe&password=\xff\xfe", "headers": {"content-type": URLENCODED}},
        {"content": b"--xx\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xx"}},
        {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
        {"json": {"email": "a@example.com", "password": "x"}},
    ],
    ids=["file", "many-fields", "long-field", "not-utf8", "broken-multipart", "no-boundary", "json"],
)
@pytest.mark.parametrize("path", ["/login", "/signup", "/logout"])
async def test_bad_form_posts_are_4xx(client: httpx.AsyncClient, path: str, kwargs: dict[str, Any]) -> None:
    await client.get("/login")
    token = client.cookies.get("__Host-threshold_csrf") or ""
    if "data" in kwargs:
        kwargs = {**kwargs, "data": {**kwargs["data"], "csrf_token": token}}
    response = await client.post(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
