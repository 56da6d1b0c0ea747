"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

from tests.conftest import ISSUER
from tests.oidc.helpers import (
    LOGOUT_URI,
    OP,
    b64url_json,
    hidden_inputs,
    not_redirected,
    oauth_error,
    redirected,
    unverified,
)


async def test_logout_with_the_sessions_id_token_ends_it_and_returns_to_the_client(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    response = await op.browser.get(
        "/oauth2/logout",
        params={"id_token_hint": tokens.id_token, "post_logout_redirect_uri": LOGOUT_URI, "state": "bye-1"},
    )

    assert redirected(response, LOGOUT_URI) == {"state": "bye-1"}
    assert not await op.signed_in()
    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_logout_without_a_redirect_uri_goes_to_the_login_page(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    response = await op.browser.get("/oauth2/logout", params={"id_token_hint": tokens.id_token})

    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert not await op.signed_in()


async def test_an_unregistered_post_logout_redirect_uri_is_an_error_page(op: OP) -> None:
    rp = await op.register()
    other = await op.register(post_logout_redirect_uris=("https://other.example/bye",))
    await op.sign_up()
    tokens = await op.tokens(rp)

    for target in ("https://evil.example/bye", LOGOUT_URI + "/x", "https://other.example/bye"):
        response = await op.browser.get(
            "/oauth2/logout",
            params={"id_token_hint": tokens.id_token, "post_logout_redirect_uri": target, "state": "s"},
        )
        not_redirected(response)
    # nor with a client_id that does not match the hint
    response = await op.browser.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens.id_token,
            "client_id": other.client_id,
            "post_logout_redirect_uri": "https://other.example/bye",
        },
    )
    not_redirected(response)
    assert await op.signed_in()


async def test_a_redirect_uri_without_any_hint_or_client_is_refused(op: OP) -> None:
    await op.register()
    await op.sign_up()

    response = await op.browser.get("/oauth2/logout", params={"post_logout_redirect_uri": LOGOUT_URI})

    not_redirected(response)
    assert await op.signed_in()


async def test_without_a_valid_hint_a_confirmation_page_is_shown_and_posting_it_logs_out(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)

    page = await op.browser.get(
        "/oauth2/logout",
        params={"client_id": rp.client_id, "post_logout_redirect_uri": LOGOUT_URI, "state": "s2"},
    )

    assert page.status_code == 200 and 'action="/oauth2/logout"' in page.text
    assert await op.signed_in()
    form = hidden_inputs(page.text)
    assert form["csrf_token"] and form["post_logout_redirect_uri"] == LOGOUT_URI
    forged = await op.browser.post(
        "/oauth2/logout", data={**form, "csrf_token": "f" * 43}, headers={"Origin": ISSUER}
    )
    assert forged.status_code == 403 and await op.signed_in()
    response = await op.browser.post("/oauth2/logout", data=form, headers={"Origin": ISSUER})
    assert redirected(response, LOGOUT_URI) == {"state": "s2"}
    assert not await op.signed_in()
    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")


async def test_a_hint_for_another_session_only_shows_the_confirmation_page(op: OP) -> None:
    rp = await op.register()
    other_browser = op.another_browser()
    await op.sign_up(other_browser)
    old = await op.tokens(rp, browser=other_browser)  # another session's ID token
    await op.sign_up()

    page = await op.browser.get("/oauth2/logout", params={"id_token_hint": old.id_token})

    assert page.status_code == 200 and 'action="/oauth2/logout"' in page.text
    assert await op.signed_in() and await op.signed_in(other_browser)


async def test_a_forged_hint_is_an_error_page(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    tokens = await op.tokens(rp)
    header, _, signature = tokens.id_token.split(".")
    tampered = f"{header}.{b64url_json({**unverified(tokens.id_token)[1], 'sid': 'x'})}.{signature}"

    response = await op.browser.get(
        "/oauth2/logout", params={"id_token_hint": tampered, "post_logout_redirect_uri": LOGOUT_URI}
    )

    not_redirected(response)
    assert await op.signed_in()
