from __future__ import annotations

import httpx

from tests.conftest import login, signup, unique_email


async def test_signup_then_session_then_logout(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await signup(client, email)
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email"] == email
    me = await client.get("/api/v1/session")
    assert me.status_code == 200
    assert me.json()["session"]["aal"] == "aal1"
    out = await client.post("/api/v1/logout")
    assert out.status_code == 204
    assert (await client.get("/api/v1/session")).status_code == 401
    again = await login(client, email)
    assert again.status_code == 200
