"""Access tokens live only as long as their grant (issue 11, hole 5; RFC 7662 section 2.2, RFC 7009 2.1).

Introspection and userinfo refuse an access token once its session has ended, its refresh family has
been revoked, its user is disabled or its client deleted, whatever its `exp` says. Each cause is
tried on its own; every test runs on SQLite and on PostgreSQL + Redis.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable

from tests.conftest import STRONG_PASSWORD, csrf
from tests.oidc.helpers import LOGOUT_URI, OP, RP, Tokens, invalid_token, oauth_error, unb64url, unverified

NEW_PASSWORD = "velvet quarry lantern meadow 7"


async def _api(op: OP) -> RP:
    """The resource server's own client: it introspects the tokens it is sent."""
    return await op.register(grant_types=("client_credentials",), scopes=("api:read",), redirect_uris=())


async def _active(op: OP, api: RP, token: str) -> bool:
    response = await op.introspect(api, token)
    assert response.status_code == 200, response.text
    active = response.json()["active"]
    assert isinstance(active, bool)
    return active


async def _live(op: OP, api: RP, tokens: Tokens) -> None:
    assert await _active(op, api, tokens.access)
    assert (await op.userinfo(tokens.access)).status_code == 200


async def _dead(op: OP, api: RP, *access_tokens: str) -> None:
    for token in access_tokens:
        assert (await op.introspect(api, token)).json() == {"active": False}
        invalid_token(await op.userinfo(token))


async def test_rp_initiated_logout_ends_the_sessions_access_tokens(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    await _live(op, api, tokens)

    response = await op.browser.get(
        "/oauth2/logout", params={"id_token_hint": tokens.id_token, "post_logout_redirect_uri": LOGOUT_URI}
    )

    assert response.status_code == 303
    await _dead(op, api, tokens.access)


async def test_api_logout_ends_the_sessions_access_tokens_and_no_others(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    other_browser = op.another_browser()
    await op.sign_up(other_browser)
    bystander = await op.tokens(rp, browser=other_browser)
    await _live(op, api, tokens)
    await op.browser_csrf()

    assert (await op.browser.post("/api/v1/logout")).status_code == 204

    await _dead(op, api, tokens.access)
    await _live(op, api, bystander)


async def test_refresh_token_reuse_ends_every_access_token_of_the_family(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    rotated = await op.refresh(rp, tokens.refresh)
    assert rotated.status_code == 200
    newest = rotated.json()["access_token"]
    assert await _active(op, api, newest)

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")  # a stolen, rotated token

    await _dead(op, api, tokens.access, newest)


async def test_revoking_the_refresh_token_ends_the_access_tokens_of_its_grant(op: OP) -> None:
    """RFC 7009 section 2.1: revoking a refresh token SHOULD invalidate the access tokens of its grant."""
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    other = await op.tokens(rp)  # another grant of the same session

    assert (await op.revoke(rp, tokens.refresh)).status_code == 200

    await _dead(op, api, tokens.access)
    await _live(op, api, other)
    assert await op.signed_in()


async def test_disabling_the_user_ends_their_access_tokens(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    account = await op.sign_up()
    tokens = await op.tokens(rp)
    await _live(op, api, tokens)
    user = await op.services.accounts.find_user(account["user"]["id"])
    assert user is not None

    await op.services.accounts.set_disabled(user, disabled=True)

    await _dead(op, api, tokens.access)


async def test_deleting_the_client_ends_its_access_tokens(op: OP) -> None:
    rp = await op.register(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    api = await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    service = await op.token(rp, {"grant_type": "client_credentials"})
    assert service.status_code == 200, service.text
    service_token = service.json()["access_token"]
    await _live(op, api, tokens)
    assert await _active(op, api, service_token)

    assert await op.provider.delete_client(rp.client_id)

    await _dead(op, api, tokens.access, service_token)
    assert await op.signed_in()  # the user's session is not the client's to end


async def test_deleting_an_admin_client_ends_its_admin_api_access(op: OP) -> None:
    admin = await op.register(
        grant_types=("client_credentials",), scopes=("threshold:admin",), redirect_uris=()
    )
    token = (await op.token(admin, {"grant_type": "client_credentials"})).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await op.rp.get("/admin/v1/clients", headers=bearer)).status_code == 200

    assert await op.provider.delete_client(admin.client_id)

    assert (await op.rp.get("/admin/v1/clients", headers=bearer)).status_code == 401


async def test_a_password_change_ends_the_access_tokens_of_the_sessions_it_ends(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    await _live(op, api, tokens)
    await op.browser_csrf()

    changed = await op.browser.post(
        "/api/v1/password/change", json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert changed.status_code == 200, changed.text
    await _dead(op, api, tokens.access)
    assert (await op.tokens(rp)).access  # the new session grants afresh
    await _live(op, api, await op.tokens(rp))


async def test_a_session_that_timed_out_ends_its_access_tokens(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    op = await op_factory(session={"idle_timeout": 60})
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    assert int(tokens.body["expires_in"]) > 120

    op.clock.advance(61)  # the session idled out, the token's own exp is still ahead

    await _dead(op, api, tokens.access)


async def test_the_access_token_names_its_grant_and_nothing_of_the_session(op: OP) -> None:
    rp, api = await op.register(), await _api(op)
    account = await op.sign_up()
    tokens = await op.tokens(rp)
    cookie = op.session_cookie()
    payload = json.loads(unb64url(tokens.access.split(".")[1]))

    grant = payload.get("grant_id")
    assert isinstance(grant, str) and 20 <= len(grant) <= 64
    raw = json.dumps(payload)
    assert hashlib.sha256(cookie.encode()).hexdigest() not in raw and cookie not in raw
    assert account["session"]["id"] not in raw and account["user"]["email"] not in raw
    refreshed = (await op.refresh(rp, tokens.refresh)).json()["access_token"]
    assert unverified(refreshed)[1]["grant_id"] == grant  # one grant, rotated refresh tokens
    assert (await op.tokens(rp)).access != tokens.access
    assert unverified((await op.tokens(rp)).access)[1]["grant_id"] != grant  # each authorization its own
    await _live(op, api, tokens)


# --- hole 10b: the grace path of refresh-token reuse goes through the same check -------------------


async def test_grace_mints_nothing_once_the_session_ended(op_factory: Callable[..., Awaitable[OP]]) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    await op.browser_csrf()
    assert (await op.browser.post("/api/v1/logout")).status_code == 204
    op.clock.advance(1)

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")  # within the grace


async def test_grace_mints_nothing_for_a_disabled_user(op_factory: Callable[..., Awaitable[OP]]) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    user = await op.services.accounts.find_user(account["user"]["id"])
    assert user is not None
    await op.services.users.set_disabled(user.id, True)  # disabled, sessions not (yet) ended
    op.clock.advance(1)

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")  # within the grace


async def test_deleting_the_account_ends_its_tokens_at_once(op: OP) -> None:
    """The person's own deletion request (core.deletion) goes through the one revocation path: the
    access tokens die with the grant and the refresh token is refused, long before the erasure."""
    rp, api = await op.register(), await _api(op)
    await op.sign_up()
    tokens = await op.tokens(rp)
    await _live(op, api, tokens)

    await csrf(op.browser)
    response = await op.browser.post("/api/v1/account/delete")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"

    await _dead(op, api, tokens.access)
    assert tokens.refresh is not None
    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")
