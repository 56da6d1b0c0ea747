"""Refresh tokens: rotation on every use, reuse detection, scope narrowing, the optional grace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import login
from tests.oidc.helpers import OP, invalid_token, oauth_error, unverified


async def test_refresh_rotates_the_token_on_every_use(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)

    first = await op.refresh(rp, tokens.refresh)
    assert first.status_code == 200, first.text
    second = await op.refresh(rp, first.json()["refresh_token"])
    assert second.status_code == 200, second.text

    values = {tokens.refresh, first.json()["refresh_token"], second.json()["refresh_token"]}
    assert len(values) == 3
    assert first.headers["cache-control"] == "no-store"
    body = second.json()
    assert body["access_token"] != tokens.access
    claims = unverified(body["access_token"])[1]
    assert claims["sub"] == account["user"]["id"] and claims["client_id"] == rp.client_id
    id_claims = unverified(body["id_token"])[1]
    assert id_claims["sid"] == account["session"]["id"] and id_claims["aud"] == rp.client_id
    assert (await op.userinfo(body["access_token"])).status_code == 200


async def test_presenting_a_rotated_token_revokes_the_family_and_the_session(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    user_id = account["user"]["id"]
    tokens = await op.tokens(rp)
    newest = tokens.refresh
    for _ in range(2):
        response = await op.refresh(rp, newest)
        assert response.status_code == 200
        newest = response.json()["refresh_token"]
    assert await op.signed_in()

    stolen = await op.refresh(rp, tokens.refresh)

    oauth_error(stolen, 400, "invalid_grant")
    oauth_error(await op.refresh(rp, newest), 400, "invalid_grant")  # the whole family
    assert not await op.signed_in()  # the linked browser session is gone
    introspected = await op.introspect(rp, newest)
    assert introspected.json() == {"active": False}
    events = await op.services.audit_log.list_for_user(user_id)
    reuse = [e for e in events if e.kind.value == "refresh_token_reuse"]
    assert len(reuse) == 1 and reuse[0].detail["client"] == rp.client_id
    # the user is told, on the account page, after signing in again
    assert (await login(op.browser, account["user"]["email"])).status_code == 200
    page = await op.browser.get("/account")
    assert page.status_code == 200
    assert "Possible token theft" in page.text


async def test_reuse_in_one_family_leaves_other_families_alone(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    other_browser = op.another_browser()
    await op.sign_up(other_browser)
    victim = await op.tokens(rp)
    bystander = await op.tokens(rp, browser=other_browser)
    assert (await op.refresh(rp, victim.refresh)).status_code == 200

    oauth_error(await op.refresh(rp, victim.refresh), 400, "invalid_grant")

    assert (await op.refresh(rp, bystander.refresh)).status_code == 200
    assert await op.signed_in(other_browser)


async def test_no_theft_warning_without_reuse(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200

    page = await op.browser.get("/account")

    assert page.status_code == 200 and "Possible token theft" not in page.text


async def test_a_refresh_token_of_another_client_is_invalid_grant(op: OP) -> None:
    rp = await op.register()
    other = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    oauth_error(await op.refresh(other, tokens.refresh), 400, "invalid_grant")
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200  # not burned by the attempt


async def test_scope_can_be_narrowed_on_refresh_but_not_widened(op: OP) -> None:
    rp = await op.register(scopes=("openid", "email", "offline_access", "profile"))
    await op.sign_up()
    tokens = await op.tokens(rp, scope="openid email offline_access")

    narrowed = await op.refresh(rp, tokens.refresh, scope="openid")

    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "openid"
    assert unverified(narrowed.json()["access_token"])[1]["scope"] == "openid"
    assert "email" not in (await op.userinfo(narrowed.json()["access_token"])).json()
    widened = await op.refresh(rp, narrowed.json()["refresh_token"], scope="openid email profile")
    oauth_error(widened, 400, "invalid_scope")
    # narrowing one access token does not shrink the grant
    again = await op.refresh(rp, narrowed.json()["refresh_token"])
    assert again.status_code == 200, again.text
    assert set(again.json()["scope"].split()) == {"openid", "email", "offline_access"}


async def test_logging_out_the_session_kills_its_refresh_tokens(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    await op.browser_csrf()

    assert (await op.browser.post("/api/v1/logout")).status_code == 204

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_refresh_token_of_a_disabled_user_stops_working(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    tokens = await op.tokens(rp)
    user = await op.services.accounts.find_user(account["user"]["id"])

    await op.services.accounts.set_disabled(user, disabled=True)

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")
    invalid_token(await op.userinfo(tokens.access))


async def test_refresh_token_expires(op_factory: Callable[..., Awaitable[OP]]) -> None:
    op = await op_factory(oidc={"refresh_token_lifetime": 600})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    op.clock.advance(601)

    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_grace_double_submit_returns_the_same_successor(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    first = await op.refresh(rp, tokens.refresh)
    assert first.status_code == 200
    op.clock.advance(3)

    double = await op.refresh(rp, tokens.refresh)

    assert double.status_code == 200, double.text
    assert double.json()["refresh_token"] == first.json()["refresh_token"]
    assert await op.signed_in()
    successor = await op.refresh(rp, first.json()["refresh_token"])
    assert successor.status_code == 200


async def test_grace_does_not_cover_a_late_reuse(op_factory: Callable[..., Awaitable[OP]]) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    first = await op.refresh(rp, tokens.refresh)
    assert first.status_code == 200
    op.clock.advance(6)

    late = await op.refresh(rp, tokens.refresh)

    oauth_error(late, 400, "invalid_grant")
    oauth_error(await op.refresh(rp, first.json()["refresh_token"]), 400, "invalid_grant")
    assert not await op.signed_in()


async def test_grace_does_not_cover_a_token_two_generations_old(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    first = await op.refresh(rp, tokens.refresh)
    second = await op.refresh(rp, first.json()["refresh_token"])
    assert second.status_code == 200

    replay = await op.refresh(rp, tokens.refresh)  # its successor was already used: theft

    oauth_error(replay, 400, "invalid_grant")
    oauth_error(await op.refresh(rp, second.json()["refresh_token"]), 400, "invalid_grant")


async def test_concurrent_double_use_without_grace_exactly_one_succeeds(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    results = await asyncio.gather(op.refresh(rp, tokens.refresh), op.refresh(rp, tokens.refresh))

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 400)
    oauth_error(loser, 400, "invalid_grant")


async def test_grace_concurrent_double_submit_both_get_the_same_successor(
    op_factory: Callable[..., Awaitable[OP]],
) -> None:
    op = await op_factory(oidc={"refresh_reuse_grace": 5})
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    store = op.provider._refresh  # slow storage widens the race window to make it deterministic
    add = store.add

    async def slow_add(token: Any) -> None:
        await asyncio.sleep(0.05)
        await add(token)

    store.add = slow_add  # type: ignore[method-assign]

    results = await asyncio.gather(op.refresh(rp, tokens.refresh), op.refresh(rp, tokens.refresh))

    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assert results[0].json()["refresh_token"] == results[1].json()["refresh_token"]
    assert await op.signed_in()
    store.add = add  # type: ignore[method-assign]
    assert (await op.refresh(rp, results[0].json()["refresh_token"])).status_code == 200
