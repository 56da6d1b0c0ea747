"""POST /api/v1/password/change: the current password is proved, every session ends, a new one starts."""

from __future__ import annotations

import httpx

from tests.api.helpers import assert_problem, browser, put_session_cookie, session_token
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email

NEW_PASSWORD = "velvet quarry lantern meadow 7"


async def _change(client: httpx.AsyncClient, current: str, new: str) -> httpx.Response:
    await csrf(client)
    return await client.post(
        "/api/v1/password/change", json={"current_password": current, "new_password": new}
    )


async def test_wrong_current_password(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    response = await _change(client, "not my password at all", NEW_PASSWORD)
    assert_problem(response, 403, "current_password_incorrect")
    assert "not my password at all" not in response.text
    assert (await client.get("/api/v1/session")).status_code == 200
    async with browser(client) as other:
        assert (await login(other, email, STRONG_PASSWORD)).status_code == 200
        assert (await login(other, email, NEW_PASSWORD)).status_code == 401


async def test_weak_new_password_changes_nothing(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    assert_problem(await _change(client, STRONG_PASSWORD, "too short"), 422, "password_too_short")
    assert (await client.get("/api/v1/session")).status_code == 200
    async with browser(client) as other:
        assert (await login(other, email, STRONG_PASSWORD)).status_code == 200


async def test_change_rotates_the_session_and_ends_every_other(client: httpx.AsyncClient) -> None:
    email = unique_email()
    old_token = session_token(await signup(client, email))
    async with browser(client) as laptop:
        assert (await login(laptop, email)).status_code == 200

        response = await _change(client, STRONG_PASSWORD, NEW_PASSWORD)
        assert response.status_code == 200, response.text
        assert NEW_PASSWORD not in response.text
        new_token = session_token(response)
        assert new_token != old_token
        body = response.json()
        assert body["user"]["email"] == email
        assert body["session"]["aal"] == "aal1"

        assert (await client.get("/api/v1/session")).json()["session"]["id"] == body["session"]["id"]
        assert (await laptop.get("/api/v1/session")).status_code == 401
        sessions = (await client.get("/api/v1/sessions")).json()["sessions"]
        assert [s["id"] for s in sessions] == [body["session"]["id"]]

    async with browser(client) as thief:
        put_session_cookie(thief, old_token)
        assert (await thief.get("/api/v1/session")).status_code == 401
        assert (await login(thief, email, STRONG_PASSWORD)).status_code == 401
        assert (await login(thief, email, NEW_PASSWORD)).status_code == 200
