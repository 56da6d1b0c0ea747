"""The current session, the session list, revocation, logout and forward auth."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest

from tests.api.helpers import (
    SESSION_COOKIE,
    USER_AGENT,
    assert_problem,
    browser,
    put_session_cookie,
    session_token,
    set_cookie,
)
from tests.conftest import csrf, login, signup, unique_email

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _parse(stamp: str) -> datetime:
    assert ISO.match(stamp), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_current_session_shape(client: httpx.AsyncClient) -> None:
    email = unique_email()
    created = (await signup(client, email)).json()
    response = await client.get("/api/v1/session")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"user", "session"}
    assert set(body["user"]) == {"id", "email", "email_verified"}
    assert set(body["session"]) == {"id", "created_at", "last_seen_at", "expires_at", "aal", "amr"}
    assert body["user"] == {"id": created["user"]["id"], "email": email, "email_verified": False}
    session = body["session"]
    assert session["id"] == created["session"]["id"]
    assert session["aal"] == "aal1"
    assert session["amr"] == ["pwd"]
    created_at, last_seen, expires = (
        _parse(session[k]) for k in ("created_at", "last_seen_at", "expires_at")
    )
    assert created_at <= last_seen < expires
    # the idle timeout (7 days by default) bounds the expiry, not the 30-day absolute lifetime
    assert 6 * 86400 < (expires - created_at).total_seconds() <= 7 * 86400


async def test_session_ids_are_not_the_cookie(client: httpx.AsyncClient) -> None:
    response = await signup(client, unique_email())
    token = session_token(response)
    assert token not in response.text
    listing = await client.get("/api/v1/sessions")
    assert token not in listing.text


@pytest.mark.parametrize("cookie", [None, "garbage", "x" * 4000, "ünïcode-☃", '"quoted"; other=1'])
async def test_session_requires_a_valid_cookie(client: httpx.AsyncClient, cookie: str | None) -> None:
    headers: dict[bytes, bytes] = {} if cookie is None else {b"cookie": f"{SESSION_COOKIE}={cookie}".encode()}
    response = await client.get("/api/v1/session", headers=headers)
    body = assert_problem(response, 401, "not_authenticated")
    assert set(body) >= {"type", "title", "status", "code", "detail"}


async def test_logout_ends_the_session_and_clears_the_cookie(client: httpx.AsyncClient) -> None:
    token = session_token(await signup(client, unique_email()))
    await csrf(client)
    response = await client.post("/api/v1/logout")
    assert response.status_code == 204
    cleared = set_cookie(response, SESSION_COOKIE)
    assert cleared["value"] == ""
    assert cleared.get("max-age") == "0" or "1970" in str(cleared.get("expires"))
    assert cleared.get("secure") is True and cleared.get("path") == "/"
    assert_problem(await client.get("/api/v1/session"), 401, "not_authenticated")
    put_session_cookie(client, token)  # a copy of the cookie kept elsewhere is dead too
    assert_problem(await client.get("/api/v1/session"), 401, "not_authenticated")


async def test_logout_without_a_session_is_harmless(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/logout")
    assert response.status_code == 204


async def test_session_list_and_revocation(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    async with browser(client, ip="198.51.100.20") as phone:
        phone.headers["user-agent"] = (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"
        )
        phone_id = (await login(phone, email)).json()["session"]["id"]
        current_id = (await client.get("/api/v1/session")).json()["session"]["id"]

        listing = await client.get("/api/v1/sessions")
        assert listing.status_code == 200
        sessions = {s["id"]: s for s in listing.json()["sessions"]}
        assert set(sessions) == {current_id, phone_id}
        mine, theirs = sessions[current_id], sessions[phone_id]
        assert mine["current"] is True and theirs["current"] is False
        assert mine["ip"] == "203.0.113.7" and theirs["ip"] == "198.51.100.20"
        assert "Firefox" in mine["device"] and "Linux" in mine["device"]
        assert "Safari" in theirs["device"] and ("iPhone" in theirs["device"] or "iOS" in theirs["device"])
        assert mine["user_agent"] == USER_AGENT
        for session in sessions.values():
            assert _parse(session["created_at"]) <= _parse(session["last_seen_at"])

        await csrf(client)
        revoked = await client.delete(f"/api/v1/sessions/{phone_id}")
        assert revoked.status_code == 204
        assert SESSION_COOKIE not in revoked.headers.get("set-cookie", "")
        assert_problem(await phone.get("/api/v1/session"), 401, "not_authenticated")
        assert (await client.get("/api/v1/session")).status_code == 200
        ids = [s["id"] for s in (await client.get("/api/v1/sessions")).json()["sessions"]]
        assert ids == [current_id]
        # revoking twice: gone
        assert_problem(await client.delete(f"/api/v1/sessions/{phone_id}"), 404, "session_not_found")


async def test_revoking_the_current_session_clears_the_cookie(client: httpx.AsyncClient) -> None:
    current = (await signup(client, unique_email())).json()["session"]["id"]
    await csrf(client)
    response = await client.delete(f"/api/v1/sessions/{current}")
    assert response.status_code == 204
    assert set_cookie(response, SESSION_COOKIE)["value"] == ""
    assert (await client.get("/api/v1/session")).status_code == 401


async def test_cannot_revoke_unknown_or_another_users_session(client: httpx.AsyncClient) -> None:
    async with browser(client) as stranger:
        await signup(stranger, unique_email("stranger"))
        stranger_session = (await stranger.get("/api/v1/session")).json()["session"]["id"]
        await signup(client, unique_email())
        await csrf(client)
        for target in (stranger_session, "does-not-exist", "0" * 200):
            assert_problem(await client.delete(f"/api/v1/sessions/{target}"), 404, "session_not_found")
        assert (await stranger.get("/api/v1/session")).status_code == 200


async def test_session_endpoints_need_a_session(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/sessions"), 401, "not_authenticated")
    assert_problem(await client.delete("/api/v1/sessions/abc"), 401, "not_authenticated")
    assert_problem(await client.post("/api/v1/sessions/revoke-others"), 401, "not_authenticated")
    assert_problem(
        await client.post(
            "/api/v1/password/change", json={"current_password": "a", "new_password": "b" * 20}
        ),
        401,
        "not_authenticated",
    )


async def test_revoke_others_keeps_only_the_current_session(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    async with browser(client) as second, browser(client, ip="192.0.2.44") as third:
        for other in (second, third):
            assert (await login(other, email)).status_code == 200
        assert len((await client.get("/api/v1/sessions")).json()["sessions"]) == 3
        await csrf(client)
        response = await client.post("/api/v1/sessions/revoke-others")
        assert response.status_code == 200
        assert response.json() == {"revoked": 2}
        for other in (second, third):
            assert (await other.get("/api/v1/session")).status_code == 401
        sessions = (await client.get("/api/v1/sessions")).json()["sessions"]
        assert [s["current"] for s in sessions] == [True]


async def test_revocation_by_the_operator_is_immediate(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    services = client.services  # type: ignore[attr-defined]
    user = await services.accounts.find_user(email)
    assert len((await services.accounts.revoke_user_sessions(user)).sessions) == 1
    assert_problem(await client.get("/api/v1/session"), 401, "not_authenticated")


async def test_disabling_the_user_ends_their_session(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup(client, email)
    services = client.services  # type: ignore[attr-defined]
    await services.accounts.set_disabled(await services.accounts.find_user(email), disabled=True)
    assert_problem(await client.get("/api/v1/session"), 401, "not_authenticated")
    assert (await client.get("/api/v1/forward-auth")).status_code == 401


async def test_forward_auth(client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/api/v1/forward-auth")
    assert_problem(anonymous, 401, "not_authenticated")
    assert anonymous.headers["cache-control"] == "no-store"
    assert "x-threshold-user-id" not in anonymous.headers

    put_session_cookie(client, "forged")
    assert (await client.get("/api/v1/forward-auth")).status_code == 401

    email = unique_email()
    user_id = (await signup(client, email)).json()["user"]["id"]
    response = await client.get("/api/v1/forward-auth")
    assert response.status_code == 200
    assert response.headers["x-threshold-user-id"] == user_id
    assert response.headers["x-threshold-user-email"] == email
    assert response.headers["cache-control"] == "no-store"

    await csrf(client)
    await client.post("/api/v1/logout")
    assert (await client.get("/api/v1/forward-auth")).status_code == 401
