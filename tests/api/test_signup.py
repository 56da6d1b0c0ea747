"""POST /api/v1/signup: the account, the session cookie, normalised addresses, the password policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import SESSION_COOKIE, assert_problem, browser, set_cookie
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email
from threshold.core.passwords import common_passwords

COMMON_LONG_PASSWORD = "manchesterunited"  # on the shipped list, and no sequence or context word


async def test_signup_creates_account_and_signs_in(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await signup(client, email)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "session"}
    assert body["user"]["email"] == email
    assert body["user"]["email_verified"] is False
    assert body["session"]["aal"] == "aal1"
    assert body["session"]["amr"] == ["pwd"]  # RFC 8176

    cookie = set_cookie(response, SESSION_COOKIE)
    assert len(cookie["value"]) >= 32
    assert cookie.get("httponly") is True
    assert cookie.get("secure") is True
    assert str(cookie.get("samesite")).lower() == "lax"
    assert cookie.get("path") == "/"
    assert "domain" not in cookie
    assert int(cookie["max-age"]) > 0

    me = await client.get("/api/v1/session")
    assert me.status_code == 200
    assert me.json()["user"] == body["user"]
    assert me.json()["session"]["id"] == body["session"]["id"]


@pytest.mark.parametrize(
    "variant",
    [
        lambda local: local.upper() + "@EXAMPLE.COM",
        lambda local: "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local) + "@example.com",
        lambda local: f"  {local.title()}@Example.Com  ",
    ],
    ids=["upper-case", "fullwidth", "spaces-and-title-case"],
)
async def test_signup_refuses_a_variant_of_an_existing_address(
    client: httpx.AsyncClient, variant: Callable[[str], str]
) -> None:
    email = unique_email("ada")
    assert (await signup(client, email)).status_code == 201
    async with browser(client) as other:
        response = await signup(other, variant(email.split("@")[0]))
        assert_problem(response, 409, "email_unavailable")
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    # and the original owner is unaffected
    async with browser(client) as third:
        assert (await login(third, email)).status_code == 200


async def test_signup_normalises_the_address_for_sign_in(client: httpx.AsyncClient) -> None:
    email = unique_email("grace")
    response = await signup(client, "  " + email.upper().replace("EXAMPLE.COM", "Example.com"))
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email"].endswith("@example.com")
    async with browser(client) as other:
        assert (await login(other, email)).status_code == 200


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short pass 1", "password_too_short"),
        (COMMON_LONG_PASSWORD, "password_compromised"),
        ("<email>", "password_contextual"),
        ("zzzzzzzzzzzzzzzzzzzz", "password_repetitive"),
        ("123456789012345", "password_repetitive"),
        ("abcdefghijklmnop", "password_repetitive"),
    ],
)
async def test_signup_rejects_weak_passwords(client: httpx.AsyncClient, password: str, code: str) -> None:
    assert COMMON_LONG_PASSWORD in common_passwords()
    email = unique_email("weak.password.user")
    submitted = password.replace("<email>", email)
    response = await signup(client, email, submitted)
    body = assert_problem(response, 422, code)
    assert submitted not in response.text
    if code == "password_too_short":
        assert body["min_length"] == 15
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    # nothing was created: the address is still free
    assert (await signup(client, email)).status_code == 201


@pytest.mark.parametrize(
    "make_password",
    [
        lambda email: email,
        lambda email: email.upper(),
        lambda email: email + "2026",
        lambda email: email.split("@")[0].title() + "2026!",
    ],
    ids=["the-address", "the-address-upper-case", "the-address-plus-year", "the-local-part-plus-year"],
)
async def test_signup_refuses_a_password_made_of_the_address(
    client: httpx.AsyncClient, make_password: Callable[[str], str]
) -> None:
    email = unique_email("alice.smith")
    password = make_password(email)
    response = await signup(client, email, password)
    body = assert_problem(response, 422, "password_contextual")
    assert "email address" in body["detail"] and "unrelated words" in body["detail"]  # what to do
    assert email not in response.text and password not in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert (await signup(client, email)).status_code == 201  # nothing was created


async def test_signup_disabled(client_factory: Callable[..., Any]) -> None:
    client: httpx.AsyncClient = await client_factory(signup_enabled=False)
    email = unique_email()
    response = await signup(client, email)
    assert_problem(response, 403, "signup_disabled")
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    await csrf(client)
    assert (await login(client, email)).status_code == 401


async def test_signup_does_not_return_the_password(client: httpx.AsyncClient) -> None:
    response = await signup(client, unique_email(), STRONG_PASSWORD)
    assert STRONG_PASSWORD not in response.text
    assert "hash" not in response.text.lower()
