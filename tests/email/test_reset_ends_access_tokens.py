"""A password reset ends every session, and with them every access token issued on their behalf (issue 11)."""

from __future__ import annotations

import httpx

from tests.conftest import csrf, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import token_of
from tests.oidc.helpers import invalid_token

NEW_PASSWORD = "copper meadow violin 2031 drift"


async def _reset(mail: MailApp, email: str) -> httpx.Response:
    asker = mail.browser()
    await csrf(asker)
    assert (await asker.post("/api/v1/password/reset/request", json={"email": email})).status_code == 202
    token = token_of((await mail.last(email, "Reset your password")).link("/reset-password"))
    return await asker.post("/api/v1/password/reset", json={"token": token, "new_password": NEW_PASSWORD})


async def test_a_password_reset_ends_the_access_tokens_of_every_session(mail: MailApp) -> None:
    email = unique_email("reset-at")
    assert (await signup(mail.client, email)).status_code == 201
    op = await mail.oidc()
    rp = await op.register()
    api = await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())
    tokens = await op.tokens(rp, mail.client)
    assert (await op.introspect(api, tokens.access)).json()["active"] is True
    assert (await op.userinfo(tokens.access)).status_code == 200

    assert (await _reset(mail, email)).status_code == 200

    assert (await op.introspect(api, tokens.access)).json() == {"active": False}
    invalid_token(await op.userinfo(tokens.access))
